import { z } from 'zod';

/**
 * What a workload's `execConfig.nomad` may ask for, checked when the workload is submitted (the API
 * answers 400 naming the field) and again when its job is built. Everything is laid over the job template.
 */
const device = z
  .object({
    /** `nvidia/gpu`, `nvidia/gpu/Tesla T4`, `amd/gpu`… */
    name: z.string().min(1).max(200),
    count: z.number().int().min(1).max(64).default(1),
    constraints: z.array(z.lazy(() => constraint)).optional(),
  })
  .strict();

const constraint = z
  .object({
    attribute: z.string().max(500).optional(),
    operator: z
      .enum([
        '=',
        '==',
        'is',
        '!=',
        'not',
        '>',
        '>=',
        '<',
        '<=',
        'distinct_hosts',
        'distinct_property',
        'regexp',
        'set_contains',
        'set_contains_any',
        'version',
        'semver',
        'is_set',
        'is_not_set',
      ])
      .default('='),
    value: z.string().max(500).optional(),
  })
  .strict();

const volumeName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'volume names may hold letters, digits, _ and -');

export const nomadExecConfig = z
  .object({
    /** A whole job template for this workload (Nomad job JSON or HCL), instead of the configured one. */
    template: z.string().min(1).max(200_000).optional(),
    /** A template file in AIRFLEET_NOMAD_TEMPLATE_DIR (a relative path, no `..`). */
    templatePath: z
      .string()
      .regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9_./-]{1,255}$/, 'templatePath must be a relative path without ..')
      .optional(),
    image: z.string().min(1).max(512).optional(),
    entrypoint: z.array(z.string().max(4_096)).max(64).optional(),
    /** Replaces the arguments after the program (the workload's command stays the program). */
    args: z.array(z.string().max(65_536)).max(1_024).optional(),
    env: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names must match [A-Za-z_][A-Za-z0-9_]*'),
        z.string(),
      )
      .optional(),
    resources: z
      .object({
        /** MHz. */
        cpu: z.number().int().min(1).max(10_000_000).optional(),
        cores: z.number().int().min(1).max(1_024).optional(),
        memoryMb: z.number().int().min(1).max(4_194_304).optional(),
        /** Oversubscription ceiling (Nomad's `memory_max`). */
        memoryMaxMb: z.number().int().min(1).max(4_194_304).optional(),
        devices: z.array(device).max(16).optional(),
      })
      .strict()
      .refine((r) => !(r.cpu !== undefined && r.cores !== undefined), {
        message: 'give cpu (MHz) or cores, not both',
      })
      .refine((r) => r.memoryMaxMb === undefined || r.memoryMb === undefined || r.memoryMaxMb >= r.memoryMb, {
        message: 'memoryMaxMb must be at least memoryMb',
      })
      .optional(),
    ephemeralDiskMb: z.number().int().min(10).max(10_000_000).optional(),
    /** Group volumes added to the template's. */
    volumes: z
      .record(
        volumeName,
        z
          .object({
            type: z.enum(['host', 'csi']).default('host'),
            source: z.string().min(1).max(200),
            readOnly: z.boolean().default(true),
          })
          .strict(),
      )
      .optional(),
    /** Mounts into the task; each must name a volume of the template (or of `volumes`). */
    volumeMounts: z
      .array(
        z
          .object({
            volume: volumeName,
            destination: z.string().regex(/^\//, 'destination must be an absolute path in the task'),
            readOnly: z.boolean().default(true),
          })
          .strict(),
      )
      .max(32)
      .optional(),
    constraints: z.array(constraint).max(32).optional(),
    meta: z.record(z.string().max(128), z.string().max(4_096)).optional(),
  })
  .strict()
  .refine((c) => !(c.template && c.templatePath), { message: 'give template or templatePath, not both' });

export type NomadExecConfig = z.output<typeof nomadExecConfig>;

/** The problems of an `execConfig.nomad`, each as `execConfig.nomad.<field>: <what is wrong>`; none when valid. */
export function nomadExecConfigProblems(value: unknown): string[] {
  if (value === undefined) return [];
  const parsed = nomadExecConfig.safeParse(value);
  if (parsed.success) return [];
  return parsed.error.issues.map((i) => `execConfig.nomad${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`);
}

/**
 * Memory (MiB) Fargate accepts for a vCPU count, per the Fargate task size table. Empty when the vCPU count
 * itself is not a Fargate size.
 */
export function fargateMemoryOptions(vcpus: number): number[] {
  const range = (from: number, to: number, step: number) =>
    Array.from({ length: (to - from) / step + 1 }, (_, i) => from + i * step);
  switch (vcpus) {
    case 0.25:
      return [512, 1024, 2048];
    case 0.5:
      return range(1024, 4096, 1024);
    case 1:
      return range(2048, 8192, 1024);
    case 2:
      return range(4096, 16_384, 1024);
    case 4:
      return range(8192, 30_720, 1024);
    case 8:
      return range(16_384, 61_440, 4096);
    case 16:
      return range(32_768, 122_880, 8192);
    default:
      return [];
  }
}

/**
 * Why a vCPU/memory pair is not a Fargate task size, naming the allowed values; undefined when it is one.
 */
export function fargateSizeProblem(vcpus: number, memoryMiB: number): string | undefined {
  const allowed = fargateMemoryOptions(vcpus);
  if (allowed.length === 0) return `${vcpus} vCPU is not a Fargate size; allowed: 0.25, 0.5, 1, 2, 4, 8, 16`;
  if (allowed.includes(memoryMiB)) return undefined;
  const step = (allowed[1] ?? allowed[0]!) - allowed[0]!;
  const range =
    allowed.length <= 4
      ? `${allowed.join(', ')} MiB`
      : `${allowed[0]} to ${allowed[allowed.length - 1]} MiB in steps of ${step}`;
  return `${memoryMiB} MiB does not fit ${vcpus} vCPU on Fargate; allowed: ${range}`;
}

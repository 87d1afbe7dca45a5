/**
 * Recognisers for secret material in free text (user data, jobspecs, environment values). They are tuned
 * to flag a secret *value*, not a mention of one: `TOKEN_FILE=/run/...`, `--secret-id name` and
 * `TOKEN=$(curl ...)` are how the boot scripts fetch secrets at run time, and must not be findings.
 */

const PATTERNS: readonly { label: string; pattern: RegExp }[] = [
  { label: 'a PEM private key', pattern: /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/ },
  { label: 'an AWS access key id', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/ },
  {
    label: 'an AWS secret access key',
    pattern: /aws_secret_access_key\s*[:=]\s*["']?[A-Za-z0-9/+=]{40}/i,
  },
  {
    // KEY=value, KEY: value, KEY = "value" where KEY ends in a secret word and the value is a literal
    // (not $VAR, $(command) or ${expression}, not a /path) of at least 6 characters.
    label: 'a literal assignment to a secret-named setting',
    pattern:
      /\b[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|credentials?)["']?\s*[:=]\s*["']?(?![$<{/])[^\s"'$]{6,}/i,
  },
];

/** What secret material the text seems to contain, as readable labels; empty when none. */
export function secretMaterialIn(text: string): string[] {
  return PATTERNS.filter(({ pattern }) => pattern.test(text)).map(({ label }) => label);
}

/**
 * Environment variable names that denote a secret value. Names that *point at* a secret (`..._FILE`,
 * `..._ARN`, `..._NAME`, `..._PATH`, `..._ID`) are fine: the value is fetched at run time.
 */
export function isSecretName(name: string): boolean {
  if (/(_FILE|_ARN|_NAME|_PATH|_ID|_PARAMETER|_URL|_ADDR)$/i.test(name)) return false;
  return /(^|[_.-])(PASS(WORD|WD)?|SECRET|TOKEN|PRIVATE_?KEY|API_?KEY|ACCESS_?KEY|CREDENTIALS?|AUTH)($|[_.-])/i.test(
    name,
  );
}

import { execFileSync } from 'node:child_process';

/**
 * The executor's API called as a user calls it over HTTPS: curl, trusting only `caFile`, so a test checks the
 * certificate the service serves (Node's fetch would need NODE_EXTRA_CA_CERTS at process start). A non-2xx
 * answer throws with its body.
 */
export function curlJson<T>(
  baseUrl: string,
  caFile: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): T {
  const args = ['-sS', '--fail-with-body', '--cacert', caFile, '-X', method, '-H', `authorization: Bearer ${token}`];
  if (body !== undefined) args.push('-H', 'content-type: application/json', '-d', JSON.stringify(body));
  return JSON.parse(execFileSync('curl', [...args, `${baseUrl}${path}`], { encoding: 'utf8' })) as T;
}

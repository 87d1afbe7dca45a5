import { NomadApiError, type NomadClient, NomadConnectionError } from './nomad-client.ts';
import type { NomadConfig } from './nomad-config.ts';

const TLS_CODES =
  /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)|EPROTO|ERR_OSSL|HOSTNAME_MISMATCH)/;

/**
 * The start-up check: address, TLS, token and namespace, in that order, each failure naming the part and
 * the variable to fix. Uses endpoints every token may call (`/v1/status/leader`, `/v1/acl/token/self`,
 * `/v1/namespace/:name`).
 */
export async function nomadHealthProblems(client: NomadClient, config: NomadConfig): Promise<string[]> {
  try {
    await client.request('GET', '/v1/status/leader', { scoped: false, timeoutMs: 10_000 });
  } catch (error) {
    return [connectionProblem(error, config)];
  }
  const problems: string[] = [];
  // Through the Task API socket NOMAD_TOKEN is a workload identity, not an ACL token: /v1/acl/token/self
  // does not know it, so the namespace read below is its check.
  if (config.token && !config.address.startsWith('unix://')) {
    try {
      await client.request('GET', '/v1/acl/token/self', { scoped: false, timeoutMs: 10_000 });
    } catch (error) {
      if (error instanceof NomadApiError && error.status === 403) {
        problems.push('token: Nomad refused NOMAD_TOKEN (403 Permission denied): set the SecretID of a live ACL token');
      } else if (!(error instanceof NomadApiError && /acl support disabled/i.test(error.message))) {
        problems.push(`token: checking NOMAD_TOKEN failed: ${(error as Error).message}`);
      }
    }
  }
  try {
    await client.request('GET', `/v1/namespace/${encodeURIComponent(config.namespace)}`, {
      scoped: false,
      timeoutMs: 10_000,
    });
  } catch (error) {
    if (error instanceof NomadApiError && error.status === 404) {
      problems.push(
        `namespace: '${config.namespace}' does not exist: create it (nomad namespace apply ${config.namespace}) or set NOMAD_NAMESPACE`,
      );
    } else if (error instanceof NomadApiError && error.status === 403) {
      problems.push(
        `namespace: the token may not read namespace '${config.namespace}' (403): its policy needs namespace "${config.namespace}" with submit-job, read-job and variables`,
      );
    } else if (!(error instanceof NomadApiError && error.status === 501)) {
      // 501: Nomad CE without namespaces behaves as if only `default` existed.
      problems.push(`namespace: reading '${config.namespace}' failed: ${(error as Error).message}`);
    }
  }
  return problems;
}

export function connectionProblem(error: unknown, config: NomadConfig): string {
  if (error instanceof NomadConnectionError) {
    const code = error.code ?? '';
    if (TLS_CODES.test(code) || /ssl|tls|certificate|handshake|alert/i.test(error.message)) {
      return `TLS: the TLS handshake with ${config.address} failed (${error.message}): check NOMAD_CACERT, NOMAD_CLIENT_CERT/NOMAD_CLIENT_KEY (Nomad requires a client certificate when verify_https_client is on) and NOMAD_TLS_SERVER_NAME`;
    }
    if (code === 'ECONNRESET' && config.address.startsWith('https://')) {
      return `TLS: ${config.address} closed the connection during the handshake (${error.message}): Nomad refuses clients without a certificate it trusts; set NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY`;
    }
    return `address: cannot reach Nomad at ${config.address} (${error.message}): check NOMAD_ADDR`;
  }
  if (error instanceof NomadApiError) {
    if (/HTTP request to an HTTPS server/i.test(error.message)) {
      return `TLS: ${config.address} speaks HTTPS: set NOMAD_ADDR=https://… and the NOMAD_CACERT/NOMAD_CLIENT_* files`;
    }
    return `address: ${config.address} is not a Nomad agent (${error.message}): check NOMAD_ADDR`;
  }
  return `address: ${(error as Error).message}`;
}

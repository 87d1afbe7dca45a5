/**
 * Where the Nomad TLS material lives: SSM SecureString parameters under the environment's
 * `nomad.tlsParameterPrefix`, put there by the operator before the first deploy (stacks/README.md,
 * Deploying), so none of it passes through Terraform.
 */

/**
 * The SSM parameter names a client of `pool` reads its TLS material from: the CA is shared, the client
 * certificate and key are the pool's own (`<prefix>/pools/<pool>/…`), readable only by the pool's role, so
 * a client of one pool cannot pose as a node of another.
 */
export function tlsParameters(prefix: string, pool: string) {
  return {
    ca: `${prefix}/ca.pem`,
    cert: `${prefix}/pools/${pool}/client.pem`,
    key: `${prefix}/pools/${pool}/client-key.pem`,
  } as const;
}

/**
 * The executor's own client certificate for the Nomad API where it runs outside Nomad (ECS): the servers
 * require one (`verify_https_client`), and it is the executor's alone, apart from every client pool's.
 */
export function executorNomadTlsParameters(prefix: string) {
  return {
    ca: `${prefix}/ca.pem`,
    cert: `${prefix}/executor/client.pem`,
    key: `${prefix}/executor/client-key.pem`,
  } as const;
}

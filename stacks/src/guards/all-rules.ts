import { encryptedStorage } from './encrypted-storage.ts';
import { openIngress } from './open-ingress.ts';
import { plaintextSecrets } from './plaintext-secrets.ts';
import { providerSourceQualified } from './provider-source-qualified.ts';
import { providerVersionPinned } from './provider-version-pinned.ts';
import { publicDatabase } from './public-database.ts';
import type { GuardRule } from './rule.ts';

/** Every rule each stack must pass; a finding from any of them fails the synth. */
export const ALL_RULES: readonly GuardRule[] = [
  encryptedStorage,
  publicDatabase,
  openIngress,
  plaintextSecrets,
  providerSourceQualified,
  providerVersionPinned,
];

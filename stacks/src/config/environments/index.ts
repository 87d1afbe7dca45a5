import { dev } from './dev.ts';
import { prod } from './prod.ts';
import { staging } from './staging.ts';

/** Every environment the app synthesizes, keyed by name (the key must equal the file's `name`). */
export const environments = { dev, staging, prod } as const;
export type EnvironmentName = keyof typeof environments;

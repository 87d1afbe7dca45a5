import { InvalidArgumentError } from 'commander';

/** Option parsers that name the option in their error, so a typo says what to fix. */
export const int = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number, got '${value}'`);
  return n;
};

export const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * IPv4 subnet arithmetic done at synth time, so subnet CIDRs are literals in the synthesized JSON (readable
 * in review, checkable by the guards) instead of `cidrsubnet()` calls Terraform evaluates later.
 */

function toInt(address: string): number {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`"${address}" is not an IPv4 address (four numbers 0-255 separated by dots)`);
  }
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

function toAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export interface Cidr {
  network: number;
  prefix: number;
}

export function parseCidr(cidr: string): Cidr {
  const [address = '', prefixText = ''] = cidr.split('/');
  const prefix = Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new RangeError(`"${cidr}" has no valid prefix length (allowed: /0 to /32)`);
  }
  const value = toInt(address);
  const size = 2 ** (32 - prefix);
  if (value % size !== 0) {
    throw new RangeError(
      `"${cidr}" is not a network address: host bits are set (did you mean ${toAddress(value - (value % size))}/${prefix}?)`,
    );
  }
  return { network: value, prefix };
}

/** Like Terraform's `cidrsubnet(prefix, newbits, netnum)`. */
export function cidrSubnet(cidr: string, newBits: number, netNum: number): string {
  const { network, prefix } = parseCidr(cidr);
  const length = prefix + newBits;
  if (!Number.isInteger(newBits) || newBits < 1 || length > 32) {
    throw new RangeError(`cannot extend /${prefix} by ${newBits} bits (the result must be at most /32)`);
  }
  if (!Number.isInteger(netNum) || netNum < 0 || netNum >= 2 ** newBits) {
    throw new RangeError(`subnet number ${netNum} does not fit in ${newBits} bits (allowed: 0 to ${2 ** newBits - 1})`);
  }
  return `${toAddress(network + netNum * 2 ** (32 - length))}/${length}`;
}

/**
 * The VPC layout: the VPC is cut in 16; private subnet i takes slice i (big: tasks, workers, databases),
 * and public subnet i takes the i-th sixteenth of the last slice (small: only NAT gateways live there).
 */
export function subnetLayout(vpcCidr: string, zones: number): { private: string[]; public: string[] } {
  if (zones < 1 || zones > 15)
    throw new RangeError(`${zones} availability zones do not fit the layout (allowed: 1 to 15)`);
  const lastSlice = cidrSubnet(vpcCidr, 4, 15);
  return {
    private: Array.from({ length: zones }, (_, i) => cidrSubnet(vpcCidr, 4, i)),
    public: Array.from({ length: zones }, (_, i) => cidrSubnet(lastSlice, 4, i)),
  };
}

/** True when the CIDR (v4 or v6) covers every address: "0.0.0.0/0", "::/0", or any spelling with /0. */
export function isAnyAddress(cidr: string): boolean {
  return /\/0+$/.test(cidr.trim());
}

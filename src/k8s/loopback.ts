import net from 'node:net';
import { NonLoopbackAddressError } from '../errors.js';

/** True for an IPv4 address in 127.0.0.0/8 or the IPv6 loopback `::1`. */
export function isLoopbackAddress(address: string): boolean {
  if (net.isIPv4(address)) return address.split('.')[0] === '127';
  if (net.isIPv6(address)) return address === '::1' || address === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Guards every client that dials a pod or node address in simulated mode: simulated pods have
 * addresses in 127.0.0.0/8, and traffic to anything else (private ranges, other hosts) is refused.
 * A hostname is refused too: it could resolve anywhere.
 *
 * @throws NonLoopbackAddressError naming the address.
 */
export function assertLoopbackAddress(address: string | undefined): string {
  if (!address || !isLoopbackAddress(address)) throw new NonLoopbackAddressError(String(address));
  return address;
}

/**
 * The base URL of a pod's HTTP port. In simulated mode (`simulated: true`) the pod IP must be a
 * loopback address; on a real cluster any pod IP is allowed.
 *
 * @example podUrl({ podIP: '127.128.0.5', port: 8080, simulated: true }) // 'http://127.128.0.5:8080'
 */
export function podUrl(options: { podIP: string | undefined; port: number; simulated: boolean }): string {
  const ip = options.simulated ? assertLoopbackAddress(options.podIP) : options.podIP;
  if (!ip) throw new NonLoopbackAddressError('(pod has no IP yet)');
  return net.isIPv6(ip) ? `http://[${ip}]:${options.port}` : `http://${ip}:${options.port}`;
}

/**
 * Refuses a URL whose host is not a literal loopback address: on a simulated cluster fleetmedic
 * sends nothing beyond 127.0.0.0/8 (notification sinks, model server admin endpoints, the webhook).
 * Only the URL's origin is named in the error: a sink URL is often its own credential.
 *
 * @param what - what the URL is for, named in the error (`notification sink "oncall"`).
 * @throws NonLoopbackAddressError naming `what` and the URL's origin.
 * @example assertLoopbackUrl('http://127.0.0.1:9095/v1/alerts', 'the webhook') // passes
 */
export function assertLoopbackUrl(url: string, what: string): void {
  let host: string;
  let origin: string;
  try {
    const parsed = new URL(url);
    host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    origin = parsed.origin;
  } catch {
    throw new NonLoopbackAddressError('(not a URL)', `refusing ${what}: not a URL`);
  }
  if (!isLoopbackAddress(host)) {
    throw new NonLoopbackAddressError(
      origin,
      `refusing ${what} at ${origin}: the cluster is a fleetmedic simulation, which sends nothing ` +
        'beyond loopback (127.0.0.0/8, ::1); use a loopback URL or a real cluster',
    );
  }
}

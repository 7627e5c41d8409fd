/**
 * The MQTT reason codes the transports interpret, with the names the specifications give them, so errors say
 * "Not authorized (0x87)" whichever library reported the number.
 */

/** MQTT 5.0 §2.4, Table 2-6 (failure codes are ≥ 0x80 [MQTT 5.0 §2.4]). */
const MQTT5_REASONS: Readonly<Record<number, string>> = Object.freeze({
  0x10: 'No matching subscribers',
  0x80: 'Unspecified error',
  0x81: 'Malformed Packet',
  0x82: 'Protocol Error',
  0x83: 'Implementation specific error',
  0x84: 'Unsupported Protocol Version',
  0x85: 'Client Identifier not valid',
  0x86: 'Bad User Name or Password',
  0x87: 'Not authorized',
  0x88: 'Server unavailable',
  0x89: 'Server busy',
  0x8a: 'Banned',
  0x8c: 'Bad authentication method',
  0x8e: 'Session taken over',
  0x8f: 'Topic Filter invalid',
  0x90: 'Topic Name invalid',
  0x91: 'Packet Identifier in use',
  0x95: 'Packet too large',
  0x97: 'Quota exceeded',
  0x99: 'Payload format invalid',
  0x9a: 'Retain not supported',
  0x9b: 'QoS not supported',
  0x9c: 'Use another server',
  0x9d: 'Server moved',
  0x9e: 'Shared Subscriptions not supported',
  0x9f: 'Connection rate exceeded',
  0xa1: 'Subscription Identifiers not supported',
  0xa2: 'Wildcard Subscriptions not supported',
});

/** MQTT 3.1.1 §3.2.2.3, Table 3.1: CONNACK return codes. */
const MQTT311_CONNACK: Readonly<Record<number, string>> = Object.freeze({
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
});

export type ProtocolVersion = 4 | 5;

export function reasonName(code: number, version: ProtocolVersion = 5, packet: 'connack' | 'other' = 'other'): string {
  const name = version === 4 && packet === 'connack' ? MQTT311_CONNACK[code] : MQTT5_REASONS[code];
  return `${name ?? 'reason code'} (0x${code.toString(16).padStart(2, '0')})`;
}

/** The broker does not speak the protocol level we asked for: 3.1.1 return code 1, or MQTT 5 0x84. */
export function isUnsupportedProtocol(code: number): boolean {
  return code === 1 || code === 0x84;
}

/**
 * Whether a refused CONNECT can succeed later without anyone changing anything: the server was unavailable or busy,
 * or we were rate limited. Everything else (bad credentials, not authorized, banned, bad client id) needs an operator.
 */
export function isRetryableConnackRefusal(code: number, version: ProtocolVersion): boolean {
  if (version === 4) return code === 3; // [MQTT 3.1.1 §3.2.2.3] Server unavailable
  return [0x80, 0x88, 0x89, 0x97, 0x9f].includes(code);
}

/** A PUBACK/SUBACK failure the broker may lift by itself (quota, busy); authorization and validity failures stay. */
export function isRetryableAckFailure(code: number): boolean {
  return [0x80, 0x89, 0x97].includes(code);
}

/** SUBACK: MQTT 3.1.1 returns 0x80 per failed filter [MQTT 3.1.1 §3.9.3]; MQTT 5 any code ≥ 0x80 [MQTT 5.0 §3.9.3]. */
export function isFailure(code: number): boolean {
  return code >= 0x80;
}

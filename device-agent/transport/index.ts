import { OutpostError } from '../../runtime/errors.js';
import { AwsIotTransport } from './aws-iot.js';
import { MqttJsTransport } from './mqttjs.js';
import type { Transport, TransportOptions } from './types.js';

export type {
  IncomingMessage,
  Qos,
  ReconnectPolicy,
  TlsFiles,
  Transport,
  TransportOptions,
  WillMessage,
} from './types.js';
export { DEFAULT_RECONNECT } from './types.js';
export { AwsIotTransport } from './aws-iot.js';
export { MqttJsTransport, type MqttJsOptions } from './mqttjs.js';
export { backoffDelay } from './backoff.js';

/** "mqtt": MQTT.js, any broker, any URL scheme. "aws-iot": aws-iot-device-sdk-v2 (MQTT 5 over mTLS). */
export const TRANSPORT_KINDS = Object.freeze(['mqtt', 'aws-iot'] as const);
export type TransportKind = (typeof TRANSPORT_KINDS)[number];

export function createTransport(kind: TransportKind, options: TransportOptions): Transport {
  switch (kind) {
    case 'mqtt':
      return new MqttJsTransport(options);
    case 'aws-iot':
      return new AwsIotTransport(options);
    default:
      throw new OutpostError('CONFIG_INVALID', `unknown transport "${String(kind)}"`, {
        details: { accepted: TRANSPORT_KINDS },
      });
  }
}

/**
 * AWS IoT Core data endpoints: `<prefix>-ats.iot.<region>.amazonaws.com` (and `.amazonaws.com.cn`), per "AWS IoT
 * device data and service endpoints". Custom domains (configurable endpoints) are not recognisable by name.
 */
const AWS_IOT_ENDPOINT = /\.iot\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/i;

/**
 * The transport a configuration implies: the AWS SDK for an AWS IoT Core endpoint reached over mqtts:// with a
 * client certificate (what the SDK is built and tested for), MQTT.js for everything else.
 */
export function selectTransportKind(options: Pick<TransportOptions, 'url' | 'tls'>): TransportKind {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return 'mqtt';
  }
  const mtls = options.tls?.cert !== undefined && options.tls.key !== undefined;
  return url.protocol === 'mqtts:' && mtls && AWS_IOT_ENDPOINT.test(url.hostname) ? 'aws-iot' : 'mqtt';
}

/** createTransport() with the kind chosen by selectTransportKind() unless one is given. */
export function createTransportFor(options: TransportOptions, kind: TransportKind | 'auto' = 'auto'): Transport {
  return createTransport(kind === 'auto' ? selectTransportKind(options) : kind, options);
}

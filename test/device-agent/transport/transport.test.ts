import { describe } from 'vitest';
import { transportSuite, type TransportVariant } from './suite.js';

/**
 * One suite, every implementation (MQTT.js's abstract_store pattern): each transport over each way it reaches a
 * broker, against a real Mosquitto (or the embedded broker when Mosquitto is absent), and the MQTT.js transport
 * against the embedded aedes broker too, so the zero-infrastructure default is held to the same behaviour.
 */
const VARIANTS: readonly TransportVariant[] = Object.freeze([
  { name: 'mqtt.js over TCP', kind: 'mqtt', listener: 'tcp' },
  { name: 'mqtt.js over mTLS', kind: 'mqtt', listener: 'mtls' },
  { name: 'mqtt.js over WebSockets', kind: 'mqtt', listener: 'ws' },
  { name: 'aws-iot-device-sdk-v2 over mTLS', kind: 'aws-iot', listener: 'mtls', needsMqtt5: true },
  { name: 'mqtt.js over TCP to the embedded broker (MQTT 3.1.1)', kind: 'mqtt', listener: 'tcp', broker: 'aedes' },
  { name: 'mqtt.js over mTLS to the embedded broker (MQTT 3.1.1)', kind: 'mqtt', listener: 'mtls', broker: 'aedes' },
  // Debian's Mosquitto (libwebsockets) cannot open a TLS WebSocket listener, so wss:// is held to the suite here.
  {
    name: 'mqtt.js over secure WebSockets (mTLS) to the embedded broker (MQTT 3.1.1)',
    kind: 'mqtt',
    listener: 'wss',
    broker: 'aedes',
  },
]);

describe.each(VARIANTS)('$name', transportSuite);

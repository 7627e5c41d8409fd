import { describe, expect, it } from 'vitest';
import { createTransport, createTransportFor, selectTransportKind } from '../../../device-agent/transport/index.js';
import { readPem } from '../../../device-agent/transport/tls.js';

const CERTS = Object.freeze({ cert: '/etc/outpost/device.crt', key: '/etc/outpost/device.key' });

describe('transport selection', () => {
  it('picks the AWS SDK for AWS IoT Core endpoints with a client certificate, MQTT.js otherwise', () => {
    const endpoint = 'mqtts://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883';
    expect(selectTransportKind({ url: endpoint, tls: CERTS })).toBe('aws-iot');
    expect(selectTransportKind({ url: 'mqtts://x-ats.iot.cn-north-1.amazonaws.com.cn', tls: CERTS })).toBe('aws-iot');
    expect(selectTransportKind({ url: endpoint })).toBe('mqtt'); // no certificate: not mTLS
    expect(selectTransportKind({ url: 'wss://a1-ats.iot.eu-west-1.amazonaws.com/mqtt', tls: CERTS })).toBe('mqtt');
    expect(selectTransportKind({ url: 'mqtts://broker.example.com:8883', tls: CERTS })).toBe('mqtt');
    expect(createTransportFor({ url: endpoint, clientId: 'pump-7', tls: CERTS }).name).toBe('aws-iot-device-sdk-v2');
    expect(createTransportFor({ url: 'mqtt://localhost', clientId: 'pump-7' }).name).toBe('mqtt.js');
  });

  it('refuses URLs a transport cannot use, naming what it accepts', () => {
    expect(thrown(() => createTransport('mqtt', { url: 'http://broker', clientId: 'x' }))).toMatchObject({
      code: 'CONFIG_INVALID',
      message: 'broker URL "http://broker" uses http:; this transport accepts mqtt:, mqtts:, ws:, wss:',
    });
    expect(thrown(() => createTransport('aws-iot', { url: 'mqtt://broker:1883', clientId: 'x' }))).toMatchObject({
      code: 'CONFIG_INVALID',
      message: 'broker URL "mqtt://broker:1883" uses mqtt:; this transport accepts mqtts:',
    });
    expect(thrown(() => createTransport('mqtt', { url: 'not a url', clientId: 'x' }))).toMatchObject({
      code: 'CONFIG_INVALID',
    });
  });

  it('takes PEM text as is and reads anything else as a path', async () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(await readPem(pem)).toBe(pem);
    await expect(readPem('/nonexistent/device.key')).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
  });

  it('fails connect() at once when the certificate files are missing', async () => {
    const transport = createTransport('aws-iot', {
      url: 'mqtts://localhost:8883',
      clientId: 'x',
      tls: { cert: '/nonexistent/device.crt', key: '/nonexistent/device.key' },
    });
    await expect(transport.connect()).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
    await transport.close();
  });
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

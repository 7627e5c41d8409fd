import { join } from 'node:path';
import { iot, iotjobs, mqtt, mqtt5 } from 'aws-iot-device-sdk-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseClosedClient } from '../../../device-agent/transport/crt.js';
import { type RunningFleet, serveFleet } from '../../../fleet/index.js';
import { waitFor } from '../../helpers/agent.js';
import { sampleCnnArtifact } from '../../helpers/artifacts.js';
import { mosquittoPath, startBroker, type TestBroker } from '../../helpers/broker.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

/**
 * A device written against AWS's own SDK (aws-iot-device-sdk-v2's IotJobsClient on its MQTT 5 client, the AWS CRT),
 * not Outpost's: if `fleet serve` answers it as AWS IoT Jobs would, devices built on the SDK work with it unchanged.
 * Mosquitto's mTLS listener with the documented ACL stands in for the IoT Core endpoint.
 */
const REPLY_MS = 10_000; // ms for the service to answer one request
const THING = 'sdk-device';

let broker: TestBroker;
let tmp: { dir: string; dispose: () => Promise<void> };
let fleet: RunningFleet;

beforeAll(async () => {
  broker = await startBroker();
  tmp = await suiteTmpDir('outpost-fleet-sdk-');
  fleet = await serveFleet({ brokerUrl: broker.urls.tcp, dataDir: join(tmp.dir, 'fleet'), http: { port: 0 } });
}, 30_000);

afterAll(async () => {
  await fleet.close();
  await broker.stop();
  await tmp.dispose();
});

function next<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const within = <T>(promise: Promise<T>, what: string): Promise<T> =>
  Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no ${what} within ${REPLY_MS} ms`)), REPLY_MS)),
  ]);

// The SDK's client needs MQTT 5 over mTLS: Mosquitto (the embedded aedes broker speaks only 3.1.1).
describe.skipIf(mosquittoPath() === undefined)("a device on aws-iot-device-sdk-v2's IotJobsClient", () => {
  it(
    'is told about the job, starts it, reports SUCCEEDED, and the deployment completes',
    { timeout: 60_000 },
    async () => {
      const id = await broker.identity(THING);
      const config = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(
        'localhost',
        id.certPath,
        id.keyPath,
      )
        .withPort(broker.ports.mtls)
        .withCertificateAuthorityFromPath(undefined, broker.ca.caPath)
        .withConnectProperties({ clientId: THING, keepAliveIntervalSeconds: 30 })
        .build();
      const client = new mqtt5.Mqtt5Client(config);
      const connected = next<true>();
      client.on('connectionSuccess', () => connected.resolve(true));
      client.start();
      try {
        await within(connected.promise, 'CONNACK');
        const jobs = iotjobs.IotJobsClient.newFromMqtt5Client(client);
        const qos = mqtt.QoS.AtLeastOnce;
        const notified = next<iotjobs.model.NextJobExecutionChangedEvent>();
        const started = next<iotjobs.model.StartNextJobExecutionResponse>();
        const updated = next<iotjobs.model.UpdateJobExecutionResponse>();
        const rejected: unknown[] = [];
        await jobs.subscribeToNextJobExecutionChangedEvents({ thingName: THING }, qos, (error, event) => {
          if (error === undefined && event?.execution !== undefined) notified.resolve(event);
        });
        await jobs.subscribeToStartNextPendingJobExecutionAccepted({ thingName: THING }, qos, (error, response) => {
          if (error === undefined && response !== undefined) started.resolve(response);
        });
        await jobs.subscribeToStartNextPendingJobExecutionRejected({ thingName: THING }, qos, (_e, r) =>
          rejected.push(r),
        );
        // It appears in the registry as an agent does: a retained status on its own topic.
        await client.publish({
          topicName: `outpost/things/${THING}/status`,
          payload: JSON.stringify({
            thing: THING,
            connected: true,
            host: { arch: 'x86_64', profile: 'x86_64:avx2', agentVersion: 'sdk' },
          }),
          qos: mqtt5.QoS.AtLeastOnce,
          retain: true,
        });
        await waitFor(
          async () => ((await fleet.store.getThing(THING))?.connected === true ? true : undefined),
          REPLY_MS,
        );

        const artifact = await fleet.service.operations.ingest((await sampleCnnArtifact(join(tmp.dir, 'a'))).dir);
        await fleet.service.operations.deploy({ artifacts: [artifact.sha256], things: [THING], id: 'sdk-job' });
        const event = await within(notified.promise, 'NextJobExecutionChanged');
        expect(event.execution).toMatchObject({ jobId: 'sdk-job', status: 'QUEUED' });

        await jobs.publishStartNextPendingJobExecution({ thingName: THING, stepTimeoutInMinutes: 15 }, qos);
        const start = await within(started.promise, 'StartNextPendingJobExecution reply');
        expect(start.execution).toMatchObject({
          jobId: 'sdk-job',
          thingName: THING,
          status: 'IN_PROGRESS',
          versionNumber: 2,
        });
        expect(start.execution?.jobDocument).toMatchObject({
          operation: 'outpost.deploy',
          model: { name: 'sample-cnn', version: '1.0.0' },
          // The files layout, fleet serve's default: the artifact's second, content-addressed stream.
          artifact: { streamId: artifact.delivery?.streamId, layout: 'files', indexFileId: 0 },
        });

        // The SDK's client dispatches replies by exact topic: subscribe for the job it was given.
        await jobs.subscribeToUpdateJobExecutionAccepted(
          { thingName: THING, jobId: 'sdk-job' },
          qos,
          (error, response) => {
            if (error === undefined && response !== undefined) updated.resolve(response);
          },
        );
        await jobs.subscribeToUpdateJobExecutionRejected({ thingName: THING, jobId: 'sdk-job' }, qos, (_e, r) =>
          rejected.push(r),
        );
        await jobs.publishUpdateJobExecution(
          {
            thingName: THING,
            jobId: 'sdk-job',
            status: iotjobs.model.JobStatus.SUCCEEDED,
            statusDetails: { step: 'done', by: 'aws-iot-device-sdk-v2' },
            expectedVersion: start.execution?.versionNumber ?? 0,
            includeJobExecutionState: true,
          },
          qos,
        );
        const update = await within(updated.promise, 'UpdateJobExecution reply');
        expect(update.executionState).toMatchObject({ status: 'SUCCEEDED', versionNumber: 3 });
        expect(rejected).toEqual([]);
        const done = await waitFor(async () => {
          const d = await fleet.store.getDeployment('sdk-job');
          return d?.state === 'COMPLETED' ? d : undefined;
        }, REPLY_MS);
        expect(done.state).toBe('COMPLETED');
        expect(await fleet.store.listExecutions('sdk-job')).toMatchObject([
          {
            thing: THING,
            status: 'SUCCEEDED',
            statusDetails: { step: 'done', by: 'aws-iot-device-sdk-v2' },
            attempts: 1,
          },
        ]);
      } finally {
        const stopped = next<true>();
        client.on('stopped', () => stopped.resolve(true));
        client.stop();
        await Promise.race([stopped.promise, new Promise((resolve) => setTimeout(resolve, 2_000))]);
        client.close();
        releaseClosedClient();
      }
    },
  );
});

// The README's Kubernetes manifests are parsed and cross-checked: the ConfigMap's config.toml loaded through the
// project's loader with the environment the pod would have (the image's ENV, then the container's), and the probes,
// ports, Service, mounts and Secret references held against it, so a port or a name changed in one place only fails.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ENV_OVERRIDES } from '../../src/config/env-overrides.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { startupWarnings } from '../../src/server.js';
import { imageEnv } from '../support/dockerfile.js';
import { readmeBlocks } from '../support/readme.js';

interface Manifest {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}
interface Probe {
  httpGet: { path: string; port: string | number };
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}
interface Container {
  image: string;
  ports: { name?: string; containerPort: number }[];
  env: EnvVar[];
  volumeMounts: { name: string; mountPath: string }[];
  startupProbe?: Probe;
  livenessProbe: Probe;
  readinessProbe: Probe;
}
interface PodSpec {
  containers: Container[];
  volumes: { name: string; configMap?: { name: string } }[];
}
interface Workload extends Manifest {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }[];
  };
}
interface Service extends Manifest {
  spec: { type: string; selector: Record<string, string>; ports: { port: number; targetPort: string | number; nodePort?: number }[] };
}

const manifests = readmeBlocks('yaml').flatMap((b) => parseAllDocuments(b).map((d) => d.toJS() as Manifest));
const only = <T extends Manifest>(kind: string): T => {
  const found = manifests.filter((m) => m.kind === kind);
  expect(found.map((m) => m.kind), `one ${kind}`).toEqual([kind]);
  return found[0] as T;
};
const workload = () => manifests.find((m) => m.kind === 'StatefulSet' || m.kind === 'Deployment') as Workload;
const container = () => workload().spec.template.spec.containers[0]!;
const secretData = (name: string) => {
  const secret = manifests.find((m) => m.kind === 'Secret' && m.metadata.name === name) as { stringData?: Record<string, string>; data?: Record<string, string> } | undefined;
  return { ...secret?.data, ...secret?.stringData };
};

/** The container port a probe or Service names (by name or number). */
function containerPort(port: string | number): number | undefined {
  return typeof port === 'number' ? port : container().ports.find((p) => p.name === port)?.containerPort;
}

/** The pod's environment: the image's ENV, then the container's; a Secret reference resolves only to a key that exists. */
function podEnv(): Record<string, string> {
  const env: Record<string, string> = { ...imageEnv };
  for (const v of container().env) {
    const ref = v.valueFrom?.secretKeyRef;
    if (ref) {
      if (ref.key in secretData(ref.name)) env[v.name] = `${v.name}-from-the-secret-7f3c9a1e`;
    } else env[v.name] = v.value!;
  }
  return env;
}

/** The ConfigMap's config.toml, where the pod reads it. */
function configFile(): { path: string; text: string } {
  const mount = container().volumeMounts.find((m) => workload().spec.template.spec.volumes.find((v) => v.name === m.name)?.configMap);
  expect(mount, 'a ConfigMap volume mounted in the container').toBeDefined();
  const volume = workload().spec.template.spec.volumes.find((v) => v.name === mount!.name)!;
  const configMap = only<Manifest & { data: Record<string, string> }>('ConfigMap');
  expect(volume.configMap!.name).toBe(configMap.metadata.name);
  const path = podEnv().ACR_MIRROR_CONFIG!;
  expect(path.startsWith(`${mount!.mountPath}/`), `${path} in the ConfigMap's mount`).toBe(true);
  const text = configMap.data[path.slice(mount!.mountPath.length + 1)];
  expect(text, `the ConfigMap holds ${path}`).toBeDefined();
  return { path, text: text! };
}

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'acr-mirror-k8s-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The configuration the pod runs with, through the project's loader: the mounted file (under a temp dir here). */
function podConfig(): Config {
  const { path, text } = configFile();
  const file = join(root, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  return loadConfig({ env: { ...podEnv(), ACR_MIRROR_CONFIG: file } });
}

const listenPort = () => Number(podConfig().server.listen.split(':').at(-1));

describe('README Kubernetes manifests', () => {
  it('are a StatefulSet with a cache volume, a Service, a ConfigMap and a Secret', () => {
    expect(manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Secret', 'Service', 'StatefulSet']);
    expect(workload().spec.volumeClaimTemplates).toHaveLength(1);
  });

  it('load as a valid configuration in the environment the pod has, without settings the environment overrides', () => {
    expect(podConfig().source).toMatch(/config\.toml with ACR_MIRROR_LISTEN, ACR_MIRROR_STORAGE_DIR, ACR_MIRROR_ALLOW from the environment$/);
    const raw = parseToml(configFile().text) as Record<string, Record<string, unknown> | undefined>;
    for (const { variable, section, key } of ENV_OVERRIDES) {
      if (podEnv()[variable]) expect(raw[section]?.[key], `${section}.${key} is overridden by ${variable}`).toBeUndefined();
    }
  });

  it('start without a warning: the admin API only over loopback (kubectl exec), clients from the allowed networks', () => {
    expect(startupWarnings(podConfig())).toEqual([]);
    expect(podConfig().access.allow.every((cidr) => cidr.startsWith('127.'))).toBe(false);
  });

  it('probe /healthz and /readyz on the port the configuration listens on', () => {
    const c = container();
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe].filter(Boolean)) {
      expect(containerPort(probe!.httpGet.port)).toBe(listenPort());
    }
    expect(c.ports.map((p) => p.containerPort)).toEqual([listenPort()]);
    expect(podConfig().server.listen).toBe(`0.0.0.0:${listenPort()}`);
  });

  it('route the Service to that port of the pods the StatefulSet makes', () => {
    const service = only<Service>('Service');
    const labels = workload().spec.template.metadata.labels;
    expect(labels).toMatchObject(workload().spec.selector.matchLabels);
    expect(labels).toMatchObject(service.spec.selector);
    expect(service.spec.ports.map((p) => containerPort(p.targetPort))).toEqual([listenPort()]);
    expect((workload().spec as { serviceName?: string }).serviceName).toBe(service.metadata.name);
  });

  it('give the container every secret the configuration names, from keys the Secret has', () => {
    const config = podConfig();
    for (const upstream of Object.values(config.upstreams)) expect(upstream.credentials, upstream.name).toBeDefined();
    expect(config.admin.token).not.toBeNull();
    for (const v of container().env.filter((e) => e.valueFrom)) {
      expect(Object.keys(secretData(v.valueFrom!.secretKeyRef.name)), v.name).toContain(v.valueFrom!.secretKeyRef.key);
    }
  });

  it('keep the cache on the volume, within max_size below the volume size', () => {
    const config = podConfig();
    const claim = workload().spec.volumeClaimTemplates![0]!;
    const mount = container().volumeMounts.find((m) => m.name === claim.metadata.name);
    expect(mount?.mountPath).toBe(config.storage.dir);
    const gi = /^(\d+)Gi$/.exec(claim.spec.resources.requests.storage);
    expect(gi, 'volume size in Gi').not.toBeNull();
    expect(config.storage.max_size).toBeLessThan(Number(gi![1]) * 2 ** 30);
  });

  it("point the nodes' containerd, 1.x and 2.x, at the Service's node port", () => {
    const service = only<Service>('Service');
    expect(service.spec.type).toBe('NodePort');
    const toml = readmeBlocks('toml');
    const hosts = toml.find((b) => /^# \S+hosts\.toml on every node/m.test(b));
    expect(hosts, 'the nodes\' hosts.toml').toBeDefined();
    const dir = /^# (\S+)\/[^/]+\/hosts\.toml/m.exec(hosts!)![1]!;
    const mirrorHost = Object.keys((parseToml(hosts!) as { host: Record<string, unknown> }).host);
    expect(mirrorHost).toEqual([`http://127.0.0.1:${service.spec.ports[0]!.nodePort}`]);
    const configPaths = toml.map((b) => parseToml(b) as { version?: number; plugins?: Record<string, { registry?: { config_path?: string } }> }).filter((d) => d.plugins);
    const byVersion = Object.fromEntries(configPaths.map((d) => [d.version, Object.entries(d.plugins!).map(([name, p]) => [name, p.registry?.config_path])]));
    expect(byVersion).toEqual({
      2: [['io.containerd.grpc.v1.cri', dir]],
      3: [['io.containerd.cri.v1.images', dir]],
    });
  });
});

// The README's Kubernetes manifests, for one replica and for three on one bucket, are parsed and cross-checked: the
// ConfigMap's config.toml loaded through the project's loader with the environment each pod would have (the
// image's ENV, then the container's), and the probes, ports, Services, mounts and Secret references held against
// it, so a port or a name changed in one place only fails.
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
import { readmeBlocks, readmeSection } from '../support/readme.js';

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
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
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
    serviceName?: string;
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }[];
  };
}
interface Service extends Manifest {
  spec: { type?: string; clusterIP?: string; selector: Record<string, string>; ports: { port: number; targetPort: string | number; nodePort?: number }[] };
}

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'acr-mirror-k8s-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The manifests of one README section, and what a pod of its StatefulSet runs with. */
function deployment(section: string) {
  const text = readmeSection(section);
  const manifests = readmeBlocks('yaml', text).flatMap((b) => parseAllDocuments(b).map((d) => d.toJS() as Manifest));
  const only = <T extends Manifest>(kind: string): T => {
    const found = manifests.filter((m) => m.kind === kind);
    expect(found.map((m) => m.kind), `one ${kind}`).toEqual([kind]);
    return found[0] as T;
  };
  const workload = () => only<Workload>('StatefulSet');
  const container = () => workload().spec.template.spec.containers[0]!;
  const services = () => manifests.filter((m): m is Service => m.kind === 'Service');
  const secretData = (name: string) => {
    const secret = manifests.find((m) => m.kind === 'Secret' && m.metadata.name === name) as { stringData?: Record<string, string>; data?: Record<string, string> } | undefined;
    return { ...secret?.data, ...secret?.stringData };
  };
  /** The container port a probe or Service names (by name or number). */
  const containerPort = (port: string | number) => (typeof port === 'number' ? port : container().ports.find((p) => p.name === port)?.containerPort);
  /** The pod's environment: the image's ENV, then the container's; a Secret reference resolves only to a key that exists. */
  const podEnv = (pod = `${workload().metadata.name}-0`): Record<string, string> => {
    const env: Record<string, string> = { ...imageEnv };
    for (const v of container().env) {
      const { secretKeyRef: ref, fieldRef } = v.valueFrom ?? {};
      if (ref) {
        if (ref.key in secretData(ref.name)) env[v.name] = `${v.name}-from-the-secret-7f3c9a1e`;
      } else if (fieldRef) {
        expect(fieldRef.fieldPath, v.name).toBe('metadata.name');
        env[v.name] = pod;
      } else env[v.name] = v.value!.replace(/\$\((\w+)\)/g, (ref, name: string) => env[name] ?? ref); // Kubernetes' $(VAR)
    }
    return env;
  };
  /** The ConfigMap's config.toml, where the pod reads it. */
  const configFile = (): { path: string; text: string } => {
    const { volumes } = workload().spec.template.spec;
    const mount = container().volumeMounts.find((m) => volumes.find((v) => v.name === m.name)?.configMap);
    expect(mount, 'a ConfigMap volume mounted in the container').toBeDefined();
    const configMap = only<Manifest & { data: Record<string, string> }>('ConfigMap');
    expect(volumes.find((v) => v.name === mount!.name)!.configMap!.name).toBe(configMap.metadata.name);
    const path = podEnv().ACR_MIRROR_CONFIG!;
    expect(path.startsWith(`${mount!.mountPath}/`), `${path} in the ConfigMap's mount`).toBe(true);
    const config = configMap.data[path.slice(mount!.mountPath.length + 1)];
    expect(config, `the ConfigMap holds ${path}`).toBeDefined();
    return { path, text: config! };
  };
  /** The configuration the pod runs with, through the project's loader: the mounted file (under a temp dir here). */
  const podConfig = (pod?: string): Config => {
    const { path, text: config } = configFile();
    const file = join(root, section.replace(/\W+/g, '-'), path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, config);
    return loadConfig({ env: { ...podEnv(pod), ACR_MIRROR_CONFIG: file } });
  };
  const listenPort = () => Number(podConfig().server.listen.split(':').at(-1));
  /** The Service the clients use: the one that is not headless. */
  const clientService = () => {
    const found = services().filter((s) => s.spec.clusterIP !== 'None');
    expect(found.map((s) => s.metadata.name), 'one client Service').toHaveLength(1);
    return found[0]!;
  };
  return { text, manifests, workload, container, services, secretData, containerPort, podEnv, configFile, podConfig, listenPort, clientService };
}

const single = deployment('### Kubernetes');
const cluster = deployment('### Kubernetes: three replicas on one bucket');

describe.each([
  ['one replica', single],
  ['three replicas on one bucket', cluster],
])('README Kubernetes manifests, %s', (_name, k) => {
  it('load as a valid configuration in the environment the pod has, without settings the environment overrides', () => {
    const overridden = ENV_OVERRIDES.filter((o) => k.podEnv()[o.variable]);
    expect(overridden.map((o) => o.variable)).toEqual(expect.arrayContaining(['ACR_MIRROR_LISTEN', 'ACR_MIRROR_STORAGE_DIR', 'ACR_MIRROR_ALLOW']));
    expect(k.podConfig().source).toMatch(new RegExp(`config\\.toml with ${overridden.map((o) => o.variable).join(', ')} from the environment$`));
    const raw = parseToml(k.configFile().text) as Record<string, Record<string, unknown> | undefined>;
    for (const { variable, section, key } of overridden) expect(raw[section]?.[key], `${section}.${key} is overridden by ${variable}`).toBeUndefined();
  });

  it('start without a warning: the admin API only over loopback (kubectl exec), clients from the allowed networks', () => {
    expect(startupWarnings(k.podConfig())).toEqual([]);
    expect(k.podConfig().access.allow.every((cidr) => cidr.startsWith('127.'))).toBe(false);
  });

  it('probe /healthz and /readyz on the port the configuration listens on', () => {
    const c = k.container();
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe].filter(Boolean)) {
      expect(k.containerPort(probe!.httpGet.port)).toBe(k.listenPort());
    }
    expect(c.ports.map((p) => p.containerPort)).toEqual([k.listenPort()]);
    expect(k.podConfig().server.listen).toBe(`0.0.0.0:${k.listenPort()}`);
  });

  it('route every Service to that port of the pods the StatefulSet makes', () => {
    const labels = k.workload().spec.template.metadata.labels;
    expect(labels).toMatchObject(k.workload().spec.selector.matchLabels);
    expect(k.services().length).toBeGreaterThan(0);
    for (const service of k.services()) {
      expect(labels).toMatchObject(service.spec.selector);
      expect(service.spec.ports.map((p) => k.containerPort(p.targetPort))).toEqual([k.listenPort()]);
    }
  });

  it('give the container every secret the configuration names, from keys the Secret has', () => {
    const config = k.podConfig();
    for (const upstream of Object.values(config.upstreams)) expect(upstream.credentials, upstream.name).toBeDefined();
    for (const v of k.container().env.filter((e) => e.valueFrom?.secretKeyRef)) {
      expect(Object.keys(k.secretData(v.valueFrom!.secretKeyRef!.name)), v.name).toContain(v.valueFrom!.secretKeyRef!.key);
    }
  });

  it('keep the cache on the volume, within max_size below the volume size', () => {
    const config = k.podConfig();
    const claim = k.workload().spec.volumeClaimTemplates![0]!;
    expect(k.workload().spec.volumeClaimTemplates).toHaveLength(1);
    const mount = k.container().volumeMounts.find((m) => m.name === claim.metadata.name);
    expect(mount?.mountPath).toBe(config.storage.dir);
    const gi = /^(\d+)Gi$/.exec(claim.spec.resources.requests.storage);
    expect(gi, 'volume size in Gi').not.toBeNull();
    expect(config.storage.max_size).toBeLessThan(Number(gi![1]) * 2 ** 30);
  });

  it("point the nodes' containerd at the client Service's node port", () => {
    const service = k.clientService();
    expect(service.spec.type).toBe('NodePort');
    const hosts = readmeBlocks('toml', k.text).find((b) => /^# \S+hosts\.toml on every node/m.test(b));
    expect(hosts, "the nodes' hosts.toml").toBeDefined();
    const mirrorHost = Object.keys((parseToml(hosts!) as { host: Record<string, unknown> }).host);
    expect(mirrorHost).toEqual([`http://127.0.0.1:${service.spec.ports[0]!.nodePort}`]);
  });
});

describe('README Kubernetes manifests, one replica', () => {
  it('are a StatefulSet with a cache volume, a Service, a ConfigMap and a Secret, and an admin token', () => {
    expect(single.manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Secret', 'Service', 'StatefulSet']);
    expect(single.workload().spec.serviceName).toBe(single.clientService().metadata.name);
    expect(single.podConfig().admin.token).not.toBeNull();
  });

  it("name the hosts.toml directory that containerd 1.x and 2.x are configured with", () => {
    const hosts = readmeBlocks('toml', single.text).find((b) => /^# \S+hosts\.toml on every node/m.test(b))!;
    const dir = /^# (\S+)\/[^/]+\/hosts\.toml/m.exec(hosts)![1]!;
    const configPaths = readmeBlocks('toml')
      .map((b) => parseToml(b) as { version?: number; plugins?: Record<string, { registry?: { config_path?: string } }> })
      .filter((d) => d.plugins);
    const byVersion = Object.fromEntries(configPaths.map((d) => [d.version, Object.entries(d.plugins!).map(([name, p]) => [name, p.registry?.config_path])]));
    expect(byVersion).toEqual({
      2: [['io.containerd.grpc.v1.cri', dir]],
      3: [['io.containerd.cri.v1.images', dir]],
    });
  });
});

describe('README Kubernetes manifests, three replicas on one bucket', () => {
  const headless = () => cluster.services().find((s) => s.spec.clusterIP === 'None');

  it('are a StatefulSet, a headless Service for the members and a Service for the clients, a ConfigMap and a Secret', () => {
    expect(cluster.manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Secret', 'Service', 'Service', 'StatefulSet']);
    expect(headless(), 'a headless Service').toBeDefined();
    expect(cluster.workload().spec.serviceName).toBe(headless()!.metadata.name);
  });

  it("list each pod by its stable name in the headless Service as a member, and give each pod its own self", () => {
    const { replicas = 1, serviceName } = cluster.workload().spec;
    expect(replicas).toBeGreaterThan(1);
    const pods = Array.from({ length: replicas }, (_, i) => `${cluster.workload().metadata.name}-${i}`);
    const members = cluster.podConfig().cluster!.members;
    expect(members).toHaveLength(replicas);
    const namespaces = new Set<string>();
    for (const [i, member] of members.entries()) {
      const m = new RegExp(`^http://${pods[i]}\\.${serviceName}\\.([a-z0-9-]+)\\.svc\\.cluster\\.local:${cluster.listenPort()}$`).exec(member);
      expect(m, member).not.toBeNull();
      namespaces.add(m![1]!);
    }
    expect(namespaces.size).toBe(1);
    for (const [i, pod] of pods.entries()) expect(cluster.podConfig(pod).cluster!.self).toBe(members[i]);
  });

  it('share one bucket, with the OSS AccessKey and the cluster secret from the Secret', () => {
    const config = cluster.podConfig();
    expect(config.storage.backend).toBe('oss');
    expect(config.storage.oss?.bucket).toBeTruthy();
    const fromSecret = (variable: string) => cluster.container().env.find((e) => e.name === variable)?.valueFrom?.secretKeyRef;
    const { cluster: raw } = parseToml(cluster.configFile().text) as { cluster: { secret_env: string } };
    for (const variable of ['ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', raw.secret_env]) expect(fromSecret(variable), variable).toBeDefined();
  });
});

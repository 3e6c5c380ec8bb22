import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { SimulatedGpu, SimulatedGpuState } from '../gpu/render.js';
import { GPUS_PER_NODE } from '../stack/sim-nodes.js';

/** Where the simulated GPUs of a cluster keep their fault state: one JSON file per node. */
export function simGpuStateDir(stateDir: string, clusterId: string): string {
  return path.join(stateDir, 'sim', clusterId, 'gpus');
}

/** A healthy 8-GPU H100 node, with UUIDs derived from the node name so they are stable. */
export function healthyGpuState(node: string): SimulatedGpuState {
  const gpus: SimulatedGpu[] = [];
  for (let index = 0; index < GPUS_PER_NODE; index++) {
    const hex = crypto.createHash('sha256').update(`${node}/${index}`).digest('hex');
    gpus.push({
      index,
      uuid: `GPU-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`,
      name: 'NVIDIA H100 80GB HBM3',
      busId: `00000000:${(0x18 + index * 0x10).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
      processes: 0,
      temperatureC: 34,
    });
  }
  return { gpus, healthWatchesSet: true, hostEngineReachable: true };
}

/** A fault to set on one GPU of a simulated node (what `fleetmedic sim inject` takes). */
export interface GpuFault {
  readonly gpu: number;
  readonly xid?: number;
  readonly remappedRowsPending?: boolean;
  readonly remappedRowsFailure?: boolean;
  readonly eccUncorrected?: number;
  readonly processes?: number;
}

/** Reads and writes the fault state of simulated nodes. */
export interface GpuStateStore {
  get(node: string): Promise<SimulatedGpuState>;
  set(node: string, state: SimulatedGpuState): Promise<void>;
}

/** Files under the state directory, written atomically so a stand-in tool never reads half a state. */
export class FileGpuStateStore implements GpuStateStore {
  constructor(private readonly dir: string) {}

  private file(node: string): string {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node))
      throw new Error(`invalid node name ${JSON.stringify(node)}`);
    return path.join(this.dir, `${node}.json`);
  }

  async get(node: string): Promise<SimulatedGpuState> {
    try {
      return JSON.parse(await fs.readFile(this.file(node), 'utf8')) as SimulatedGpuState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return healthyGpuState(node);
      throw err;
    }
  }

  async set(node: string, state: SimulatedGpuState): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const file = this.file(node);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(state));
    await fs.rename(tmp, file);
  }
}

/** In memory, for unit tests and large simulations hosted in one process. */
export class MemoryGpuStateStore implements GpuStateStore {
  private readonly states = new Map<string, SimulatedGpuState>();
  get(node: string): Promise<SimulatedGpuState> {
    return Promise.resolve(this.states.get(node) ?? healthyGpuState(node));
  }
  set(node: string, state: SimulatedGpuState): Promise<void> {
    this.states.set(node, state);
    return Promise.resolve();
  }
}

/** The state with `fault` applied to its GPU. */
export function withFault(state: SimulatedGpuState, fault: GpuFault): SimulatedGpuState {
  if (!state.gpus.some((g) => g.index === fault.gpu)) {
    throw new RangeError(`GPU ${fault.gpu} does not exist (the node has GPUs 0..${state.gpus.length - 1})`);
  }
  return {
    ...state,
    gpus: state.gpus.map((g) => {
      if (g.index !== fault.gpu) return g;
      return {
        ...g,
        ...(fault.xid !== undefined && { xid: fault.xid }),
        ...(fault.remappedRowsPending !== undefined && { remappedRowsPending: fault.remappedRowsPending }),
        ...(fault.remappedRowsFailure !== undefined && { remappedRowsFailure: fault.remappedRowsFailure }),
        ...(fault.eccUncorrected !== undefined && { eccUncorrected: fault.eccUncorrected }),
        ...(fault.processes !== undefined && { processes: fault.processes }),
      };
    }),
  };
}

/**
 * What `nvidia-smi -r -i N` does to a GPU: volatile ECC counts and the last XID clear and pending row
 * remaps are applied. A GPU that fell off the bus (XID 79) or whose row remapping failed is not
 * fixed by a reset.
 */
export function afterReset(state: SimulatedGpuState, gpu: number): SimulatedGpuState {
  return {
    ...state,
    gpus: state.gpus.map((g) =>
      g.index === gpu && g.xid !== 79
        ? { ...g, xid: undefined, eccUncorrected: 0, remappedRowsPending: false }
        : g,
    ),
    healthFailures: (state.healthFailures ?? []).filter((f) => f.gpuIndex !== gpu),
  };
}

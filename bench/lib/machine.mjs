/**
 * What the bench ran on, for the results file and the report header.
 */

import os from 'node:os';

export function machineInfo() {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()}`,
    platform: process.platform,
    arch: process.arch,
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    cpuCount: cpus.length,
    availableParallelism: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    totalMemoryBytes: os.totalmem(),
    node: process.version,
  };
}

/** One line for humans: "Intel Xeon … ×2, 23.5 GiB, Linux 6.1, node v20.20.2". */
export function describeMachine(m) {
  const gib = (m.totalMemoryBytes / 1024 ** 3).toFixed(1);
  return `${m.cpuModel} ×${m.cpuCount}, ${gib} GiB, ${m.os}, node ${m.node}`;
}

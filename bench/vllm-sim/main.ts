/**
 * `node dist/bench/vllm-sim/main.js [options]`: one simulated vLLM replica until SIGINT/SIGTERM.
 * Prints one banner line with the bound URL (so `--port 0` can be parsed by tests and benches).
 * Exit codes: 0 after a signal, 1 when it cannot start, 2 on a usage error.
 */

import { helpText, parseArgs, UsageError } from './options.js';
import { startVllmSim } from './server.js';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`vllm-sim: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(helpText());
    return 0;
  }
  const o = parsed.options;
  const sim = await startVllmSim(o);
  if (!o.quiet) {
    process.stdout.write(
      `vllm-sim listening on ${sim.url} model=${o.model} kv_blocks=${o.kvBlocks} block_size=${o.blockSize} ` +
        `max_running=${o.maxRunning} max_model_len=${sim.options.maxModelLen} prefix_caching=${o.prefixCaching}\n`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await sim.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`vllm-sim: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

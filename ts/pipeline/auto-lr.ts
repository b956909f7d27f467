/**
 * `train.optimizer.lr: auto`: before a new run trains, an LR range test (lr-find.ts) on its
 * training data, every class active (also under a curriculum), picks the base LR — the steepest
 * descent of the smoothed loss. The curve
 * (lr-find.csv, lr-find.svg) and the choice (lr-auto.json) stay in the run folder, and the run's
 * config.yaml holds the picked number, so a resumed run and `crt` use the same LR.
 */
import { join } from "node:path";
import type { ResolvedConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { findLr, formatLrFind } from "./lr-find.ts";
import type { RunPaths } from "./rundir.ts";
import { writeAtomic } from "./rundir.ts";
import { DEFAULT_LR } from "../model/options.ts";

/** Steps of the range test (each one training step at the run's batch size). */
export const AUTO_LR_STEPS = 100;

/** The config with `lr: auto` replaced by the range test's pick (unchanged when lr is a number). */
export async function resolveAutoLr(
  config: ResolvedConfig,
  paths: RunPaths,
  log: Logger,
): Promise<ResolvedConfig> {
  if (config.train.optimizer.lr !== "auto") return config;
  log.info(`train.optimizer.lr is auto: running the LR range test (${AUTO_LR_STEPS} steps) first`);
  const r = await findLr(config, { out: paths.dir, steps: AUTO_LR_STEPS, allClasses: true });
  for (const line of formatLrFind(r).split("\n")) log.info(line);
  const lr = r.descended ? r.suggestedLr : DEFAULT_LR;
  if (!r.descended) {
    log.warn(`lr auto: the loss never fell during the range test; using the default lr ${lr}`);
  }
  await writeAtomic(
    join(paths.dir, "lr-auto.json"),
    JSON.stringify(
      { picked: lr, descended: r.descended, stop: r.stop, steps: r.points.length, csv: r.csv },
      null,
      2,
    ) +
      "\n",
  );
  log.info(`lr auto: training at lr ${lr} (curve: lr-find.svg)`);
  return { ...config, train: { ...config.train, optimizer: { ...config.train.optimizer, lr } } };
}

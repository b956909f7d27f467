/**
 * `--resume` with `--set`: which overrides a resumed run accepts, and how they are recorded.
 *
 * What was trained — the data, the model, the augmentation, the loss, sampler, curriculum and
 * optimizer — is fixed by the run folder; an override of it is refused with the list of what may
 * change. Safe overrides (length, evaluation cadence, threads, step cap, loss read cadence, early
 * stopping, device)
 * are applied, written into the run's config.yaml and appended to `overrides.jsonl`; a longer or
 * shorter run says in the log what moves with its length.
 */
import { join } from "node:path";
import { configToYaml, type ResolvedConfig } from "./config.ts";
import { UsageError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { appendJsonLine, type RunPaths, writeAtomic } from "./rundir.ts";

/** Config keys (and their sub-keys) a resumed run may change. */
export const RESUME_SAFE_KEYS = [
  "train.epochs",
  "train.evalEvery",
  "train.threads",
  "train.maxStepsPerEpoch",
  // how often the loss is read back: progress and checks only, the weights do not depend on it
  "train.logEverySteps",
  "train.earlyStopping",
  "device",
];

const keyOf = (o: string): string => o.slice(0, Math.max(0, o.indexOf("="))).trim();

/** Refuses overrides a resumed run cannot take (a UsageError naming them and what is allowed). */
export function checkResumeOverrides(overrides: string[]): void {
  const refused = overrides.map(keyOf).filter((k) =>
    !RESUME_SAFE_KEYS.some((s) => k === s || k.startsWith(`${s}.`))
  );
  if (refused.length === 0) return;
  throw new UsageError(
    `--resume cannot change ${
      refused.join(", ")
    }: a resumed run keeps what it was trained with (data, model, ` +
      `augmentation, loss, sampler, curriculum, optimizer). It may change: ${RESUME_SAFE_KEYS.join(", ")}. ` +
      `Start a new run for other changes`,
  );
}

/** Applies the record of accepted overrides: config.yaml rewritten, overrides.jsonl appended, the log told. */
export async function recordResumeOverrides(
  paths: RunPaths,
  before: ResolvedConfig,
  after: ResolvedConfig,
  overrides: string[],
  fromEpoch: number,
  log: Logger,
): Promise<void> {
  await writeAtomic(paths.config, configToYaml(after));
  await appendJsonLine(join(paths.dir, "overrides.jsonl"), {
    at: new Date().toISOString(),
    fromEpoch,
    set: overrides,
  });
  log.info(`Resumed with ${overrides.map((o) => `--set ${o}`).join(" ")} (recorded in overrides.jsonl)`);
  const [was, now] = [before.train.epochs, after.train.epochs];
  if (was === now) return;
  const moves: string[] = [];
  if (after.train.schedule.name !== "constant") moves.push(`the LR schedule (${after.train.schedule.name})`);
  if (after.stage.name !== "none") moves.push(`the stage plugin's plan (${after.stage.name})`);
  const also = moves.length > 0
    ? `; measured on the run's length, ${moves.join(" and ")} change from there on`
    : "";
  log.info(`train.epochs ${was} → ${now}: the run continues at epoch ${fromEpoch + 1}${also}`);
}

/**
 * The TensorBoard callback: `runs/<run>/tb/events.out.tfevents.*` (`tensorboard --logdir runs`).
 * Every event's step is the run's global step (steps taken so far), so step-level and epoch-level
 * charts share one axis.
 *
 * Tags (`<c>` = `<class index>_<class name>`, the index zero-padded when there are ≥ 10 classes):
 * - every `LOG_EVERY_STEPS` steps: `train_step/loss` (mean of the batch losses read since the
 *   previous point; left out when none was read) and `train_step/lr` (the step's LR).
 * - every epoch: `train/loss`, `train/accuracy`, `train/macro_f1`, `train/balanced_accuracy`,
 *   `train/recall/<c>`, `train/f1/<c>` (the epoch's sampled batches, active classes), `train/lr`,
 *   `train/epoch` (1-based), `perf/images_per_second`, `perf/epoch_seconds`, `curriculum/stage`
 *   (1-based, as train.log prints it), `curriculum/active_classes`, `sampled_per_class/<c>`
 *   (images drawn this epoch), and the image `train/confusion_matrix`.
 * - every evaluation: the same metrics and image under `val/` (all classes); under `val_active/`
 *   loss, accuracy, macro_f1 and balanced_accuracy on the active classes while a curriculum stage
 *   trains only some.
 * Per-class recall and F1 are written only for classes with rows in the evaluated set.
 *
 * The confusion image is a heat map: one square per (true row, predicted column), shaded by the
 * row's share (the recall of the row's class on the diagonal), white 0 → dark blue 1; a row
 * with no rows evaluated is gray. The file is flushed after every epoch, at the end, and on
 * an error. A resumed run starts a new file in the same folder and, before its first step, a
 * SessionLog START at that step, which tells TensorBoard to drop the older file's events from
 * that step on (work after the checkpoint that the resume discards).
 */
import { join } from "node:path";
import type { Callback, EpochRecord } from "./callbacks.ts";
import { encodePng } from "./png.ts";
import { type EncodedImage, EventWriter } from "./tensorboard.ts";
import type { Metrics } from "./types.ts";

/** Steps between two step-level points (the option `train.logEverySteps` is to replace it). */
export const LOG_EVERY_STEPS = 50;

/** The class part of a tag: `<index>_<name>`, the index padded to the widest one. */
export function classTags(classNames: string[]): string[] {
  const width = String(Math.max(classNames.length - 1, 0)).length;
  return classNames.map((name, k) =>
    `${String(k).padStart(width, "0")}_${name.replace(/[^A-Za-z0-9._-]+/g, "_")}`
  );
}

const EMPTY = [255, 255, 255], FULL = [8, 48, 107], NO_ROWS = [224, 224, 224], GRID = [160, 160, 160];

/** The heat map of a confusion matrix as an RGB PNG (see the module doc). */
export async function confusionImage(confusion: number[][]): Promise<EncodedImage> {
  const n = confusion.length;
  const cell = Math.min(48, Math.max(4, Math.floor(384 / Math.max(n, 1))));
  const size = n * (cell + 1) + 1;
  const px = new Uint8Array(size * size * 3);
  const paint = (x0: number, y0: number, w: number, h: number, rgb: number[]): void => {
    for (let y = y0; y < y0 + h; y++) {
      for (let x = x0; x < x0 + w; x++) px.set(rgb, (y * size + x) * 3);
    }
  };
  paint(0, 0, size, size, GRID);
  for (let r = 0; r < n; r++) {
    const total = confusion[r].reduce((s, v) => s + v, 0);
    for (let c = 0; c < n; c++) {
      const share = total > 0 ? confusion[r][c] / total : 0;
      const rgb = total > 0 ? EMPTY.map((e, i) => Math.round(e + (FULL[i] - e) * share)) : NO_ROWS;
      paint(1 + c * (cell + 1), 1 + r * (cell + 1), cell, cell, rgb);
    }
  }
  return { width: size, height: size, colorspace: 3, encoded: await encodePng(px, size, size, 3) };
}

/** Scalars of one split's metrics under `prefix/` (per-class ones only for classes with rows). */
export function metricScalars(prefix: string, m: Metrics, classes: string[] | null): Record<string, number> {
  const out: Record<string, number> = {
    [`${prefix}/loss`]: m.loss,
    [`${prefix}/accuracy`]: m.accuracy,
    [`${prefix}/macro_f1`]: m.macroF1,
    [`${prefix}/balanced_accuracy`]: m.balancedAccuracy,
  };
  if (classes) {
    m.perClass.forEach((pc, k) => {
      if (pc.support <= 0 || classes[k] === undefined) return;
      out[`${prefix}/recall/${classes[k]}`] = pc.recall;
      out[`${prefix}/f1/${classes[k]}`] = pc.f1;
    });
  }
  return out;
}

/** Every scalar of one epoch's record (see the module doc). */
export function epochScalars(r: EpochRecord, classes: string[]): Record<string, number> {
  const out: Record<string, number> = {
    ...metricScalars("train", r.trainMetrics, classes),
    "train/lr": r.lr,
    "train/epoch": r.epoch + 1,
    "perf/images_per_second": r.train.imagesPerSecond,
    "perf/epoch_seconds": r.train.seconds,
    "curriculum/stage": r.stage + 1,
    "curriculum/active_classes": r.activeClasses.length,
  };
  r.sampledPerClass.forEach((count, k) => {
    if (classes[k] !== undefined) out[`sampled_per_class/${classes[k]}`] = count;
  });
  if (r.val) {
    Object.assign(out, metricScalars("val", r.val.all, classes));
    if (r.activeClasses.length < classes.length) {
      Object.assign(out, metricScalars("val_active", r.val.active, null));
    }
  }
  return out;
}

/** The TensorBoard callback of a run (see the module doc). */
export function tensorboardCallback(opts: { everySteps?: number } = {}): Callback {
  const every = opts.everySteps ?? LOG_EVERY_STEPS;
  let writer: EventWriter | null = null;
  let classes: string[] = [];
  let startPending = false;
  let lossSum = 0, lossCount = 0;
  return {
    async onFitStart(info): Promise<void> {
      writer = await EventWriter.create(join(info.paths.dir, "tb"));
      classes = classTags(info.classNames);
      startPending = info.startEpoch > 0;
    },
    onTrainBatchEnd(_epoch, _step, _running, _images, batch): void {
      if (!writer) return;
      if (startPending) {
        writer.add(batch.globalStep, { sessionStart: true });
        startPending = false;
      }
      if (batch.loss !== null) {
        lossSum += batch.loss;
        lossCount++;
      }
      if (batch.globalStep % every !== 0) return;
      const values: Record<string, number> = { "train_step/lr": batch.lr };
      if (lossCount > 0) values["train_step/loss"] = lossSum / lossCount;
      writer.scalars(batch.globalStep, values);
      lossSum = lossCount = 0;
    },
    async onEpochEnd(record): Promise<void> {
      if (!writer) return;
      writer.scalars(record.globalStep, epochScalars(record, classes));
      const images: [string, number[][]][] = [["train/confusion_matrix", record.trainMetrics.confusion]];
      if (record.val) images.push(["val/confusion_matrix", record.val.all.confusion]);
      for (const [tag, confusion] of images) {
        if (confusion.length > 0) {
          writer.add(record.globalStep, { summary: [{ tag, image: await confusionImage(confusion) }] });
        }
      }
      await writer.flush();
    },
    async onFitEnd(): Promise<void> {
      await writer?.flush();
    },
    async onException(): Promise<void> {
      await writer?.flush();
    },
  };
}

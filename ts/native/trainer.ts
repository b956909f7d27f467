/**
 * `Trainer`: the TS owner of one native `HnTrainer` handle (optimizer state and the kept
 * autograd graph of a model). It shares its model's call queue, since both touch the weights.
 */
import {
  lossClassIssue,
  type NativeLossInput,
  NativeLossSchema,
  type NativeTrainerConfig,
  toNativeLossConfig,
} from "./config.ts";
import { closedError, NativeError } from "./errors.ts";
import { getNative, type Handle } from "./ffi.ts";
import { type BatchShape, checkBatch, checkTargets } from "./handle.ts";
import { linkModel, type Model, type ModelLink } from "./model.ts";
import { check, checkHandle, type HandleErrorFn } from "./status.ts";
import { encodeJson, encodeString, readOutString } from "./strings.ts";

const freeTrainer = new FinalizationRegistry<Handle>((handle) => {
  getNative().symbols.hn_trainer_free(handle);
});

/** What `describe` reports about a trainer. */
export interface TrainerDescription {
  /** The `hn_trainer_new` JSON as the library decoded it (equal to what was sent). */
  config: NativeTrainerConfig;
  /** Optimizer steps taken. */
  steps: number;
  /** Of those, the steps that took the fused Adam pass (`optimizer.fused`). */
  fusedSteps: number;
  /** The moving average of the weights; null when the config's `ema` is null. */
  ema: EmaDescription | null;
}

/** What `describe` reports about a trainer's EMA. */
export interface EmaDescription {
  /** EMA updates so far (one per optimizer step; restored by `loadState`) */
  updates: number;
  /** of those, the updates that took the fused CPU pass */
  fusedUpdates: number;
  /** whether the model holds the EMA weights now (`swapEma`) */
  swapped: boolean;
}

/** Result of `trainStep`. */
export interface TrainStepResult {
  /** Mean native loss over the batch. */
  loss: number;
  /** Train-mode logits `[n, numClasses]`. */
  logits: Float32Array;
}

/** What the train statistics count (`resetStats`); see `hn_trainer_stats_reset` in docs/ABI.md. */
export interface TrainStatsConfig {
  /** candidate classes of the argmax; rows with another label are not counted */
  classes: number[];
  /** k values of top-k hits (k below the number of classes given) */
  topK: number[];
  /** per-class value added to the logits (float64) before counting; null: none */
  bias: ArrayLike<number> | null;
  /** the counts a resumed epoch starts from; null or absent: none */
  carry?: Omit<TrainStats, "lossSum"> | null;
}

/** The train statistics of an epoch so far (`trainStats`). */
export interface TrainStats {
  images: number;
  steps: number;
  /** Σ batch mean loss × batch size; NaN once a counted loss was not finite */
  lossSum: number;
  /** `C × C`, row = label, column = argmax */
  confusion: number[][];
  /** rows whose label is among the k best candidates, keyed by k */
  topKHits: Record<string, number>;
}

/**
 * Trains a model: either two calls per step (`forwardTrain`, a TS loss, `backwardStep`) or one
 * (`trainStep` with the native loss set by `setLoss`). Closed by its model's close().
 */
export class Trainer {
  #handle: Handle | null;
  readonly #model: Model;
  readonly #link: ModelLink;
  readonly #shape = new BigInt64Array(4);
  readonly #f64 = new Float64Array(1);
  readonly #u64 = new BigUint64Array(1);
  #dlogitsLen: number | null = null;

  private constructor(handle: Handle, model: Model, link: ModelLink) {
    this.#handle = handle;
    this.#model = model;
    this.#link = link;
    freeTrainer.register(this, handle, this);
  }

  /** Makes a trainer for `model` from its `hn_trainer_new` JSON (see `createTrainer` for the facade). */
  static create(model: Model, config: NativeTrainerConfig): Trainer {
    const op = "hn_trainer_new";
    const link = linkModel(model);
    const cfg = encodeJson(config);
    const out = new BigUint64Array(1);
    const modelHandle = link.handle(op);
    if (link.queue.busy) {
      throw new NativeError("BUSY", op, "a call on the model is in flight; await it first");
    }
    check(getNative().symbols.hn_trainer_new(modelHandle, cfg, BigInt(cfg.length), out), op);
    const handle = out[0];
    if (handle === 0n) throw new NativeError("STATE", op, "returned HN_OK but a null handle");
    const trainer = new Trainer(handle, model, link);
    link.adopt(trainer);
    return trainer;
  }

  /** The model this trainer updates. */
  get model(): Model {
    return this.#model;
  }
  get closed(): boolean {
    return this.#handle === null;
  }

  /** The raw handle, for interop only; throws CLOSED after close(). */
  get unsafeHandle(): Handle {
    return this.#live("unsafeHandle");
  }

  #live(op: string): Handle {
    if (this.#handle === null) throw closedError(op, "trainer");
    return this.#handle;
  }

  #idle(op: string): Handle {
    const handle = this.#live(op);
    if (this.#link.queue.busy) {
      throw new NativeError("BUSY", op, "a call on this trainer's model is in flight; await it first");
    }
    return handle;
  }

  #lastError(handle: Handle): HandleErrorFn {
    const { hn_trainer_last_error } = getNative().symbols;
    return (buf, cap, outLen) => hn_trainer_last_error(handle, buf, cap, outLen);
  }

  /** Runs `fn` in the model's queue after checking (now and when it runs) that the trainer is open. */
  #queued<T>(
    op: string,
    validate: () => void,
    fn: (handle: Handle) => Promise<T> | T,
  ): Promise<T> {
    try {
      this.#live(op);
      validate();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#link.queue.run(() => fn(this.#live(op)));
  }

  /**
   * Train-mode logits `[n, numClasses]`; the graph stays native for the next `backwardStep`.
   * `x` must not be modified until the promise settles.
   */
  forwardTrain(x: Float32Array, shape: BatchShape): Promise<Float32Array> {
    const op = "hn_trainer_forward_train";
    const channels = this.#link.inputChannels;
    return this.#queued(
      op,
      () => checkBatch(op, x, shape, channels),
      async (handle) => {
        const n = checkBatch(op, x, shape, channels, this.#shape);
        const out = new Float32Array(n * this.#link.numClasses);
        const { hn_trainer_forward_train } = getNative().symbols;
        const status = await hn_trainer_forward_train(
          handle,
          x as Float32Array<ArrayBuffer>,
          BigInt(x.length),
          this.#shape,
          out,
          BigInt(out.length),
        );
        checkHandle(status, op, this.#lastError(handle));
        this.#dlogitsLen = out.length;
        return out;
      },
    );
  }

  /**
   * `logits.backward(dlogits)`, gradient clipping and one optimizer step. `dlogits` has the
   * shape of the last `forwardTrain` logits. Returns the total gradient L2 norm before clipping.
   */
  backwardStep(dlogits: Float32Array): Promise<{ gradNorm: number }> {
    const op = "hn_trainer_backward_step";
    const validate = (): void => {
      if (!(dlogits instanceof Float32Array)) {
        throw new NativeError("INVALID_ARG", op, "dlogits must be a Float32Array");
      }
    };
    return this.#queued(op, validate, async (handle) => {
      const expected = this.#dlogitsLen;
      if (expected !== null && dlogits.length !== expected) {
        throw new NativeError(
          "INVALID_ARG",
          op,
          `dlogits has ${dlogits.length} values; the last forwardTrain gave ${expected} logits`,
        );
      }
      const { hn_trainer_backward_step } = getNative().symbols;
      const status = await hn_trainer_backward_step(
        handle,
        dlogits as Float32Array<ArrayBuffer>,
        BigInt(dlogits.length),
        this.#f64,
      );
      checkHandle(status, op, this.#lastError(handle));
      this.#dlogitsLen = null;
      return { gradNorm: this.#f64[0] };
    });
  }

  /** Sets the native loss used by `trainStep` (validated with `NativeLossSchema`). */
  setLoss(loss: NativeLossInput): void {
    const op = "hn_trainer_set_loss";
    const config = toNativeLossConfig(NativeLossSchema.parse(loss));
    const issue = lossClassIssue(config, this.#link.numClasses);
    if (issue !== null) throw new NativeError("INVALID_ARG", op, issue);
    const handle = this.#idle(op);
    const cfg = encodeJson(config);
    check(getNative().symbols.hn_trainer_set_loss(handle, cfg, BigInt(cfg.length)), op);
  }

  /** The config as the library decoded it, and the optimizer's step counts. */
  describe(): TrainerDescription {
    const op = "hn_trainer_describe";
    const handle = this.#idle(op);
    const { hn_trainer_describe } = getNative().symbols;
    const json = readOutString(
      op,
      (buf, cap, outLen) => hn_trainer_describe(handle, buf, cap, outLen),
      check,
    );
    const parsed = JSON.parse(json) as {
      config: NativeTrainerConfig;
      steps: number;
      fused_steps: number;
      ema: { updates: number; fused_updates: number; swapped: boolean } | null;
    };
    const ema = parsed.ema === null
      ? null
      : { updates: parsed.ema.updates, fusedUpdates: parsed.ema.fused_updates, swapped: parsed.ema.swapped };
    return { config: parsed.config, steps: parsed.steps, fusedSteps: parsed.fused_steps, ema };
  }

  /**
   * Exchanges the model's trained weights with their moving average in place (queued after
   * in-flight calls): the model then predicts and saves with the EMA weights; a second call
   * swaps back, bit for bit. While swapped, steps and `saveState`/`loadState` fail with `STATE`;
   * so does a trainer made with `ema: null`. See `withEma` for the scoped form.
   */
  swapEma(): Promise<void> {
    const op = "hn_trainer_swap_ema";
    return this.#queued(op, () => {}, (handle) => {
      check(getNative().symbols.hn_trainer_swap_ema(handle), op);
    });
  }

  /** Runs `fn` with the EMA weights swapped in, and swaps back however `fn` ends. */
  async withEma<T>(fn: () => Promise<T>): Promise<T> {
    await this.swapEma();
    try {
      return await fn();
    } finally {
      await this.swapEma();
    }
  }

  /** One call: forward, native loss (mean over the batch), backward, clip, optimizer step. */
  trainStep(x: Float32Array, shape: BatchShape, targets: Int32Array): Promise<TrainStepResult> {
    const op = "hn_trainer_train_step";
    const channels = this.#link.inputChannels;
    const validate = (): void => {
      const n = checkBatch(op, x, shape, channels);
      checkTargets(op, targets, n, this.#link.numClasses);
    };
    return this.#queued(op, validate, async (handle) => {
      const n = checkBatch(op, x, shape, channels, this.#shape);
      const logits = new Float32Array(n * this.#link.numClasses);
      const { hn_trainer_train_step } = getNative().symbols;
      const status = await hn_trainer_train_step(
        handle,
        x as Float32Array<ArrayBuffer>,
        BigInt(x.length),
        this.#shape,
        targets as Int32Array<ArrayBuffer>,
        BigInt(targets.length),
        logits,
        BigInt(logits.length),
        this.#f64,
      );
      checkHandle(status, op, this.#lastError(handle));
      return { loss: this.#f64[0], logits };
    });
  }

  /**
   * `trainStep` that copies no logits back and reads the loss only when `readLoss` (else null):
   * on CUDA such a step does not wait for the device. The batch is counted in `trainStats`.
   */
  trainStepLazy(
    x: Float32Array,
    shape: BatchShape,
    targets: Int32Array,
    readLoss: boolean,
  ): Promise<number | null> {
    const op = "hn_trainer_train_step";
    const channels = this.#link.inputChannels;
    const validate = (): void => {
      const n = checkBatch(op, x, shape, channels);
      checkTargets(op, targets, n, this.#link.numClasses);
    };
    return this.#queued(op, validate, async (handle) => {
      checkBatch(op, x, shape, channels, this.#shape);
      const { hn_trainer_train_step } = getNative().symbols;
      const status = await hn_trainer_train_step(
        handle,
        x as Float32Array<ArrayBuffer>,
        BigInt(x.length),
        this.#shape,
        targets as Int32Array<ArrayBuffer>,
        BigInt(targets.length),
        null,
        0n,
        readLoss ? this.#f64 : null,
      );
      checkHandle(status, op, this.#lastError(handle));
      return readLoss ? this.#f64[0] : null;
    });
  }

  /**
   * Starts a new epoch of train statistics; `lossSum` (default 0) and `config.carry` are what a
   * resumed epoch had already counted (the sum crosses as an f64, bit for bit).
   */
  resetStats(config: TrainStatsConfig, lossSum = 0): void {
    const op = "hn_trainer_stats_reset";
    const k = config.carry ?? null;
    const json = {
      classes: config.classes,
      top_k: config.topK,
      bias: config.bias && Array.from(config.bias),
      carry: k && { images: k.images, steps: k.steps, confusion: k.confusion, top_k: k.topKHits },
    };
    const cfg = encodeJson(json);
    check(getNative().symbols.hn_trainer_stats_reset(this.#idle(op), cfg, BigInt(cfg.length), lossSum), op);
  }

  /** Counts the last `forwardTrain`'s logits against `targets` with the TS loss's batch mean `loss`. */
  countLast(targets: Int32Array, loss: number): Promise<void> {
    const op = "hn_trainer_count_last";
    return this.#queued(op, () => {}, (handle) => {
      const t = targets as Int32Array<ArrayBuffer>;
      check(getNative().symbols.hn_trainer_count_last(handle, t, BigInt(t.length), loss), op);
    });
  }

  /** The epoch's train statistics so far: one read back from the device. */
  trainStats(): TrainStats {
    const op = "hn_trainer_train_stats";
    const handle = this.#idle(op);
    const { hn_trainer_train_stats } = getNative().symbols;
    const json = readOutString(
      op,
      (buf, cap, outLen) => hn_trainer_train_stats(handle, buf, cap, outLen),
      check,
    );
    const p = JSON.parse(json) as {
      images: number;
      steps: number;
      loss_sum: number | null;
      confusion: number[][];
      top_k: Record<string, number>;
    };
    return {
      images: p.images,
      steps: p.steps,
      // JSON has no NaN: the library writes null for a sum that is not finite
      lossSum: p.loss_sum ?? Number.NaN,
      confusion: p.confusion,
      topKHits: p.top_k,
    };
  }

  /** Sets the learning rate of every parameter group. */
  setLr(lr: number): void {
    const op = "hn_trainer_set_lr";
    if (!(Number.isFinite(lr) && lr > 0)) {
      throw new NativeError("INVALID_ARG", op, `lr must be > 0; got ${lr}`);
    }
    check(getNative().symbols.hn_trainer_set_lr(this.#idle(op), lr), op);
  }

  /** Optimizer steps taken (restored by `loadState`). */
  stepCount(): number {
    const op = "hn_trainer_step_count";
    check(getNative().symbols.hn_trainer_step_count(this.#idle(op), this.#u64), op);
    return Number(this.#u64[0]);
  }

  /** Writes the optimizer moments and step count, and the EMA with its update count, as safetensors (atomically). */
  saveState(path: string): Promise<void> {
    return this.#pathCall("hn_trainer_save_state", path);
  }

  /** Restores what `saveState` wrote; NativeError `CHECKPOINT` when it does not fit. */
  loadState(path: string): Promise<void> {
    return this.#pathCall("hn_trainer_load_state", path);
  }

  #pathCall(op: "hn_trainer_save_state" | "hn_trainer_load_state", path: string): Promise<void> {
    return this.#queued(op, () => {}, (handle) => {
      const bytes = encodeString(path);
      check(getNative().symbols[op](handle, bytes, BigInt(bytes.length)), op);
    });
  }

  /** Frees the handle (after an in-flight call settles). Idempotent. */
  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    freeTrainer.unregister(this);
    this.#link.release(this);
    this.#link.queue.whenIdle(() => getNative().symbols.hn_trainer_free(handle));
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

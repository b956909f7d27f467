/**
 * `Model`: the TS owner of one native `HnModel` handle.
 */
import type { NativeModelConfig } from "./config.ts";
import { closedError, NativeError } from "./errors.ts";
import { getNative, type Handle } from "./ffi.ts";
import { type BatchShape, CallQueue, checkBatch } from "./handle.ts";
import { check, checkHandle, type HandleErrorFn } from "./status.ts";
import { encodeJson, encodeString, readOutString } from "./strings.ts";

/** What the model is: its tensors' names and shapes in state_dict (checkpoint) order, and the config as Rust decoded it. */
export interface ModelDescription {
  numClasses: number;
  params: { name: string; shape: number[] }[];
  /** The `hn_model_new` JSON as the library decoded it (equal to what was sent). */
  config: NativeModelConfig;
}

/** How many times each kernel option's path has run in this model (`kernel_calls` of docs/ABI.md). */
export interface KernelCalls {
  fusedGroupNorm: number;
  convRewrites: number;
  channelsLast: number;
}

interface DescribeJson {
  num_classes: number;
  params: { name: string; shape: number[] }[];
  config: NativeModelConfig;
  kernel_calls: { fused_group_norm: number; conv_rewrites: number; channels_last: number };
}

/** Something a model closes in its own close() (its trainers). */
export interface ModelChild {
  close(): void;
}

/**
 * What a trainer needs of its model: the handle, the shared call queue and child tracking.
 * @internal for trainer.ts only.
 */
export interface ModelLink {
  readonly queue: CallQueue;
  readonly numClasses: number;
  readonly inputChannels: number;
  handle(op: string): Handle;
  adopt(child: ModelChild): void;
  release(child: ModelChild): void;
}

const freeModel = new FinalizationRegistry<Handle>((handle) => {
  getNative().symbols.hn_model_free(handle);
});

/** @internal Set in Model's static block: gives trainer.ts its view of a model. */
export let linkModel: (model: Model) => ModelLink;

/**
 * The native HybridNet. Owns its handle; `close()` (or `using`) frees it and closes every
 * trainer made from it. Calls on one model and its trainers run one at a time, in call order.
 */
export class Model {
  #handle: Handle | null;
  readonly #config: NativeModelConfig;
  readonly #queue = new CallQueue();
  readonly #children = new Set<ModelChild>();
  readonly #shape = new BigInt64Array(4);
  readonly #u64 = new BigUint64Array(1);
  #description: ModelDescription | undefined;

  static {
    linkModel = (model: Model): ModelLink => ({
      queue: model.#queue,
      numClasses: model.numClasses,
      inputChannels: model.inputChannels,
      handle: (op) => model.#live(op),
      adopt: (child) => void model.#children.add(child),
      release: (child) => void model.#children.delete(child),
    });
  }

  private constructor(handle: Handle, config: NativeModelConfig) {
    this.#handle = handle;
    this.#config = structuredClone(config);
    freeModel.register(this, handle, this);
  }

  /** Builds a model from its `hn_model_new` JSON (see `createModel` for the validating facade). */
  static create(config: NativeModelConfig): Model {
    const { hn_model_new } = getNative().symbols;
    const cfg = encodeJson(config);
    const out = new BigUint64Array(1);
    check(hn_model_new(cfg, BigInt(cfg.length), out), "hn_model_new");
    const handle = out[0];
    if (handle === 0n) throw new NativeError("STATE", "hn_model_new", "returned HN_OK but a null handle");
    return new Model(handle, config);
  }

  /** The `hn_model_new` JSON the model was built from. */
  get config(): NativeModelConfig {
    return structuredClone(this.#config);
  }
  get numClasses(): number {
    return this.#config.num_classes;
  }
  get inputChannels(): number {
    return this.#config.input_channels;
  }
  get closed(): boolean {
    return this.#handle === null;
  }

  /** The raw handle, for interop only; throws CLOSED after close(). */
  get unsafeHandle(): Handle {
    return this.#live("unsafeHandle");
  }

  #live(op: string): Handle {
    if (this.#handle === null) throw closedError(op, "model");
    return this.#handle;
  }

  /** For synchronous calls: the handle, if no non-blocking call is in flight on this model. */
  #idle(op: string): Handle {
    const handle = this.#live(op);
    if (this.#queue.busy) {
      throw new NativeError(
        "BUSY",
        op,
        "a call on this model (or one of its trainers) is in flight; await it first",
      );
    }
    return handle;
  }

  #lastError(handle: Handle): HandleErrorFn {
    const { hn_model_last_error } = getNative().symbols;
    return (buf, cap, outLen) => hn_model_last_error(handle, buf, cap, outLen);
  }

  /**
   * Eval-mode logits `[n, numClasses]` of an NCHW batch. `input` must not be modified until
   * the promise settles. Throws NativeError `INVALID_ARG` for a bad length, shape, or NaN/Inf.
   */
  forward(input: Float32Array, shape: BatchShape): Promise<Float32Array> {
    const op = "hn_model_forward_eval";
    try {
      this.#live(op);
      checkBatch(op, input, shape, this.inputChannels);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue.run(async () => {
      const handle = this.#live(op);
      const n = checkBatch(op, input, shape, this.inputChannels, this.#shape);
      const out = new Float32Array(n * this.numClasses);
      const { hn_model_forward_eval } = getNative().symbols;
      const status = await hn_model_forward_eval(
        handle,
        input as Float32Array<ArrayBuffer>,
        BigInt(input.length),
        this.#shape,
        out,
        BigInt(out.length),
      );
      checkHandle(status, op, this.#lastError(handle));
      return out;
    });
  }

  /** Writes the weights as safetensors (atomically: temp file + rename). */
  save(path: string): Promise<void> {
    return this.#pathCall("hn_model_save", path);
  }

  /** Strict load: every tensor present, no extras, same shapes; else NativeError `CHECKPOINT` naming it. */
  load(path: string): Promise<void> {
    return this.#pathCall("hn_model_load", path);
  }

  #pathCall(op: "hn_model_save" | "hn_model_load", path: string): Promise<void> {
    return this.#queue.run(() => {
      const handle = this.#live(op);
      const bytes = encodeString(path);
      check(getNative().symbols[op](handle, bytes, BigInt(bytes.length)), op);
    });
  }

  /** Number of trainable parameters. */
  parameterCount(): number {
    const op = "hn_model_param_count";
    const handle = this.#idle(op);
    check(getNative().symbols.hn_model_param_count(handle, this.#u64), op);
    return Number(this.#u64[0]);
  }

  /** Tensor names and shapes in checkpoint order, and the config as decoded natively. */
  describe(): ModelDescription {
    this.#idle("hn_model_describe");
    if (this.#description === undefined) {
      const parsed = this.#describeJson();
      this.#description = { numClasses: parsed.num_classes, params: parsed.params, config: parsed.config };
    }
    return structuredClone(this.#description);
  }

  /** How many times each kernel option's path has run in this model's forwards so far. */
  kernelCalls(): KernelCalls {
    const c = this.#describeJson().kernel_calls;
    return {
      fusedGroupNorm: c.fused_group_norm,
      convRewrites: c.conv_rewrites,
      channelsLast: c.channels_last,
    };
  }

  #describeJson(): DescribeJson {
    const op = "hn_model_describe";
    const handle = this.#idle(op);
    const { hn_model_describe } = getNative().symbols;
    const json = readOutString(op, (buf, cap, outLen) => hn_model_describe(handle, buf, cap, outLen), check);
    return JSON.parse(json) as DescribeJson;
  }

  /** Frees the handle (after an in-flight call settles) and closes every trainer of this model. Idempotent. */
  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    for (const child of [...this.#children]) child.close();
    this.#children.clear();
    this.#handle = null;
    freeModel.unregister(this);
    this.#queue.whenIdle(() => getNative().symbols.hn_model_free(handle));
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

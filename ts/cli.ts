/**
 * `hybridnet` command line: train, eval, predict, data:inspect, compare, report, lr:find, crt, config,
 * schema — each defined by its own function below; the work is in ts/pipeline.
 *
 * Config, plugin, data, divergence and usage errors print one message (no stack) and exit 1; a
 * NativeError prints its code and message; a refused permission (train, eval and predict run with
 * scoped permissions through ts/launch.ts) prints Deno's message and the line that asked. Anything
 * else is a bug and prints its stack.
 */
import { Command } from "commander";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NativeError } from "./native/errors.ts";
import {
  configForData,
  evaluateCheckpoint,
  formatEval,
  formatInspect,
  formatPredictions,
  inspectData,
  loadConfigWithData,
  predictImages,
} from "./pipeline/commands.ts";
import { configJsonSchema, loadConfig } from "./pipeline/config.ts";
import {
  ConfigError,
  DataError,
  DivergenceError,
  InterruptedError,
  PluginError,
  UsageError,
} from "./pipeline/errors.ts";
import { checkResumeOverrides } from "./pipeline/resume.ts";
import { runPipeline } from "./pipeline/runner.ts";

/** The config used when none is given. */
export const DEFAULT_CONFIG = "configs/quick.yaml";

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** Prints an error the way the CLI does; returns the exit code (130 for an interrupted run, as a shell's). */
export function reportError(err: unknown): number {
  if (err instanceof InterruptedError) {
    console.error(err.message);
    return 130;
  } else if (err instanceof ConfigError) {
    console.error(err.format());
  } else if (err instanceof NativeError) {
    console.error(`NativeError [${err.code}] ${err.message}`);
  } else if (
    err instanceof DataError || err instanceof PluginError || err instanceof DivergenceError ||
    err instanceof UsageError
  ) {
    console.error(`error: ${err.message}`);
  } else if (err instanceof Deno.errors.NotCapable) {
    console.error(`error: ${refusal(err)}`);
  } else if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) {
    console.error(`error: ${(err as Error).message}`);
  } else {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  }
  return 1;
}

/**
 * A permission the command was not given (train, eval and predict run with scoped permissions, see
 * ts/launch.ts): Deno's message, and where it was asked for — the first stack frame outside ts/
 * and the npm packages, e.g. a user plugin's line.
 */
function refusal(err: Error): string {
  const own = new URL("./", import.meta.url).href;
  const frame = (err.stack ?? "").split("\n").map((l) => l.trim())
    .find((l) => l.startsWith("at ") && l.includes("file://") && !l.includes(own) && !l.includes("/npm/"));
  const m = frame?.match(/(file:\/\/\S+?):(\d+):(\d+)\)?$/);
  const where = m ? ` (at ${fileURLToPath(m[1])}:${m[2]}:${m[3]})` : "";
  return `${err.message}${where}. train, eval and predict run with only the permissions they need ` +
    `(README, "Permissions")`;
}

/** Builds the commander program. */
export function buildProgram(): Command {
  const program = new Command("hybridnet")
    .description("HybridNet training pipeline (TypeScript on Deno, libtorch engine)")
    .exitOverride();
  for (
    const add of [
      trainCommand,
      evalCommand,
      predictCommand,
      dataInspectCommand,
      compareCommand,
      reportCommand,
      lrFindCommand,
      crtCommand,
      configCommand,
      schemaCommand,
    ]
  ) add(program);
  return program;
}

/** `train`: trains (or resumes) a run into runs/<date>-<name>/. */
function trainCommand(program: Command): void {
  program.command("train")
    .description("train a model; writes runs/<date>-<name>/")
    .option("--config <file>", "YAML config", DEFAULT_CONFIG)
    .option("--data <dir>", "dataset folder (overrides the loader's root/dir)")
    .option("--set <key=value>", "override a config value (repeatable), e.g. train.epochs=2", collect, [])
    .option("--resume <runDir>", "continue a run from its last checkpoint")
    .option("--device <device>", "auto | cpu | cuda | cuda:N")
    .option("--name <name>", "run name")
    .option("--out <dir>", "folder of the run folders", "runs")
    .option("--quiet", "no console log (train.log is still written)")
    .action(async (o: {
      config: string;
      data?: string;
      set: string[];
      resume?: string;
      device?: string;
      name?: string;
      out: string;
      quiet?: boolean;
    }) => {
      const overrides = [...o.set];
      if (o.device) overrides.push(`device=${o.device}`);
      if (o.name) overrides.push(`name=${o.name}`);
      if (o.resume) checkResumeOverrides(overrides); // before anything is loaded or written
      const file = o.resume ? join(o.resume, "config.yaml") : o.config;
      const config = await loadConfigWithData(file, overrides, o.data);
      const result = await runPipeline(config, {
        out: o.out,
        resumeDir: o.resume ? resolve(o.resume) : undefined,
        resumeOverrides: o.resume ? overrides : undefined,
        configFile: file,
        console: !o.quiet,
      });
      console.log(`run folder: ${result.dir}`);
      console.log(`report: ${result.dir}/report.html (and report.md with curves.svg, class-recall.svg)`);
    });
}

/** `eval`: metrics and confusion matrix of a checkpoint on a split. */
function evalCommand(program: Command): void {
  program.command("eval")
    .description("metrics and confusion matrix of a checkpoint on a split")
    .requiredOption(
      "--checkpoint <file>",
      "weights (.safetensors), e.g. runs/<run>/checkpoints/best.safetensors",
    )
    .requiredOption("--data <dir>", "dataset folder")
    .option("--split <split>", "val | test", "val")
    .option("--config <file>", "config (default: the run's config.yaml next to the checkpoint's folder)")
    .option("--set <key=value>", "override a config value (repeatable)", collect, [])
    .option("--json", "print the metrics as JSON")
    .option("--allow-class-mismatch", "score data whose class names differ from the checkpoint's")
    .action(
      async (
        o: {
          checkpoint: string;
          data: string;
          split: string;
          config?: string;
          set: string[];
          json?: boolean;
          allowClassMismatch?: boolean;
        },
      ) => {
        if (o.split !== "val" && o.split !== "test") {
          throw new UsageError(`--split must be val or test; got ${o.split}`);
        }
        const { config, runDir } = await configForData({
          checkpoint: o.checkpoint,
          config: o.config,
          data: o.data,
          defaultConfig: DEFAULT_CONFIG,
          overrides: o.set,
        });
        const r = await evaluateCheckpoint({
          checkpoint: o.checkpoint,
          config,
          runDir,
          split: o.split,
          allowClassMismatch: o.allowClassMismatch === true,
        });
        console.log(o.json ? JSON.stringify(r, null, 2) : formatEval(r));
      },
    );
}

/** `predict`: class and probabilities per image file. */
function predictCommand(program: Command): void {
  program.command("predict")
    .description("class and probabilities per image")
    .requiredOption("--checkpoint <file>", "weights in a run folder (runs/<run>/checkpoints/*.safetensors)")
    .argument("<images...>", "image files")
    .option("--json", "print JSON")
    .action(async (images: string[], o: { checkpoint: string; json?: boolean }) => {
      const ps = await predictImages({ checkpoint: o.checkpoint, images });
      console.log(o.json ? JSON.stringify(ps, null, 2) : formatPredictions(ps));
    });
}

/** `data:inspect`: counts per class and split, and what the sampler draws per stage. */
function dataInspectCommand(program: Command): void {
  program.command("data:inspect")
    .description(
      "class counts per split, and per curriculum stage the sampler's expected share and a simulated draw",
    )
    .requiredOption("--data <dir>", "dataset folder")
    .option(
      "--config <file>",
      "config whose loader, sampler and stage to use (default: a plain config for the folder)",
    )
    .option("--set <key=value>", "override a config value (repeatable)", collect, [])
    .option("--json", "print JSON")
    .action(async (o: { data: string; config?: string; set: string[]; json?: boolean }) => {
      const { config } = await configForData({
        config: o.config,
        data: o.data,
        defaultConfig: DEFAULT_CONFIG,
        overrides: o.set,
      });
      const r = await inspectData(config, (l) => console.error(l));
      console.log(o.json ? JSON.stringify(r, null, 2) : formatInspect(r));
    });
}

/** `compare`: several recipes × seeds on the same budget; a mean ± std table. */
function compareCommand(program: Command): void {
  program.command("compare")
    .description(
      "train several recipes on the same data, budget and seeds; writes a mean ± std table and a chart",
    )
    .argument("[spec]", "compare spec YAML (base config, seeds, shared overrides, recipes or grid)")
    .option("--config <file>", "a recipe config (repeatable); the first is the base", collect, [])
    .option("--grid <key=v1,v2>", "a grid axis over one base config (repeatable)", collect, [])
    .option("--set <key=value>", "override for every recipe (repeatable), e.g. train.epochs=4", collect, [])
    .option("--seeds <list>", "comma-separated seeds", "0,1,2")
    .option("--name <name>", "comparison name (folder runs/compare-<name>)", "compare")
    .option("--out <dir>", "folder of the comparison folder", "runs")
    .option("--verbose", "print every run's log")
    .option(
      "--parallel <n>",
      "runs training at once, each in its own process (cores split between them)",
      "1",
    )
    .action(async (specFile: string | undefined, o: {
      config: string[];
      grid: string[];
      set: string[];
      seeds: string;
      name: string;
      out: string;
      verbose?: boolean;
      parallel: string;
    }) => {
      const parallel = Number(o.parallel);
      if (!Number.isInteger(parallel) || parallel < 1) {
        throw new UsageError(`compare: --parallel must be an integer >= 1; got ${o.parallel}`);
      }
      const { loadCompareSpec, runCompare, specFromArgs } = await import("./pipeline/compare.ts");
      const spec = specFile ? await loadCompareSpec(specFile) : specFromArgs({
        configs: o.config,
        grid: o.grid,
        set: o.set,
        seeds: o.seeds.split(",").map((v) => Number(v.trim())),
        name: o.name,
      });
      if (specFile && o.set.length > 0) spec.set.push(...o.set);
      const r = await runCompare(spec, { out: o.out, console: o.verbose === true, parallel });
      console.log(r.markdown);
      console.log(`comparison folder: ${r.dir} (compare.md, compare.svg, compare.json)`);
    });
}

/** `report`: one HTML page comparing run folders (curves, figures, per-class recall, config differences). */
function reportCommand(program: Command): void {
  program.command("report")
    .description("write one HTML page comparing runs: curves, final and best figures, config differences")
    .argument("<runs...>", "run folders (runs/<date>-<name>)")
    .option("--out <file>", "the page to write", "runs/report-compare.html")
    .action(async (runs: string[], o: { out: string }) => {
      const { writeComparePage } = await import("./pipeline/report-compare.ts");
      console.log(`wrote ${await writeComparePage(runs, o.out)}`);
    });
}

/** `lr:find`: the LR range test. */
function lrFindCommand(program: Command): void {
  program.command("lr:find")
    .description("LR range test: trains briefly with a growing LR; writes lr-find.csv/svg and suggests an LR")
    .option("--config <file>", "YAML config", DEFAULT_CONFIG)
    .option("--data <dir>", "dataset folder (overrides the loader's root/dir)")
    .option("--set <key=value>", "override a config value (repeatable)", collect, [])
    .option("--min <lr>", "first LR", "1e-7")
    .option("--max <lr>", "last LR", "1")
    .option("--steps <n>", "training steps", "100")
    .option("--out <dir>", "folder for lr-find.csv and lr-find.svg", "runs/lr-find")
    .action(async (o: {
      config: string;
      data?: string;
      set: string[];
      min: string;
      max: string;
      steps: string;
      out: string;
    }) => {
      const { findLr, formatLrFind } = await import("./pipeline/lr-find.ts");
      const config = await loadConfigWithData(o.config, o.set, o.data);
      const r = await findLr(config, {
        out: o.out,
        minLr: Number(o.min),
        maxLr: Number(o.max),
        steps: Number(o.steps),
      });
      console.log(formatLrFind(r));
    });
}

/** `crt`: classifier re-training on a finished run. */
function crtCommand(program: Command): void {
  program.command("crt")
    .description(
      "classifier re-training: freeze a run's features, re-train the head with class-balanced sampling",
    )
    .requiredOption("--run <dir>", "a run folder (runs/<date>-<name>)")
    .option("--checkpoint <which>", "best | last", "best")
    .option("--epochs <n>", "epochs of head training", "2")
    .option("--sampler <name>", "sampler plugin for the head", "inverse-frequency")
    .option("--loss <name>", "loss plugin for the head", "cross-entropy")
    .option("--lr <lr>", "learning rate (default: the run's)")
    .option("--json", "print the result as JSON")
    .action(async (o: {
      run: string;
      checkpoint: string;
      epochs: string;
      sampler: string;
      loss: string;
      lr?: string;
      json?: boolean;
    }) => {
      if (o.checkpoint !== "best" && o.checkpoint !== "last") {
        throw new UsageError(`--checkpoint must be best or last; got ${o.checkpoint}`);
      }
      const { formatCrt, retrainClassifier } = await import("./pipeline/crt.ts");
      const r = await retrainClassifier({
        runDir: o.run,
        checkpoint: o.checkpoint,
        epochs: Number(o.epochs),
        sampler: { name: o.sampler },
        loss: { name: o.loss },
        lr: o.lr === undefined ? undefined : Number(o.lr),
      });
      console.log(o.json ? JSON.stringify(r, null, 2) : formatCrt(r));
    });
}

/** `config`: prints a config resolved. */
function configCommand(program: Command): void {
  program.command("config")
    .description("print a config resolved (defaults filled, paths absolute)")
    .option("--config <file>", "YAML config", DEFAULT_CONFIG)
    .option("--set <key=value>", "override a config value (repeatable)", collect, [])
    .action(async (o: { config: string; set: string[] }) => {
      const { configToYaml } = await import("./pipeline/config.ts");
      console.log(configToYaml(await loadConfig(o.config, o.set)));
    });
}

/** `schema`: writes the JSON Schema of config files. */
function schemaCommand(program: Command): void {
  program.command("schema")
    .description("write the JSON Schema of config files")
    .argument("[out]", "output file", "configs/schema.json")
    .action(async (out: string) => {
      await Deno.writeTextFile(out, JSON.stringify(configJsonSchema(), null, 2) + "\n");
      console.log(`wrote ${out}`);
    });
}

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === "string" && e.code.startsWith("commander.")) {
      return e.code === "commander.helpDisplayed" || e.code === "commander.version" ? 0 : (e.exitCode ?? 1);
    }
    return reportError(err);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

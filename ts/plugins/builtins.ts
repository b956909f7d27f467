/**
 * The built-in plugins, by stage and name. A config names one of these, or a path to a user's
 * .ts file exporting the same `{ name, configSchema, create }` shape.
 */
import type { PluginModule, PluginStage } from "../pipeline/types.ts";
import { plugin as standard } from "./augment/standard.ts";
import { plugin as tsFunction } from "./augment/ts-function.ts";
import { plugin as classification } from "./evaluate/classification.ts";
import { plugin as csv } from "./load/csv.ts";
import { plugin as idx } from "./load/idx.ts";
import { plugin as imagefolder } from "./load/imagefolder.ts";
import { plugin as synthetic } from "./load/synthetic.ts";
import { plugin as classBalancedFocal } from "./loss/class-balanced-focal.ts";
import { plugin as crossEntropy } from "./loss/cross-entropy.ts";
import { plugin as focal } from "./loss/focal.ts";
import { plugin as ldamDrw } from "./loss/ldam-drw.ts";
import { plugin as logitAdjusted } from "./loss/logit-adjusted.ts";
import { plugin as ordinal } from "./loss/ordinal.ts";
import { plugin as effectiveNumber } from "./sample/effective-number.ts";
import { plugin as inverseFrequency } from "./sample/inverse-frequency.ts";
import { plugin as progressive } from "./sample/progressive.ts";
import { plugin as shuffle } from "./sample/shuffle.ts";
import { plugin as sqrtInverse } from "./sample/sqrt-inverse.ts";
import { plugin as antiCurriculum } from "./stage/anti-curriculum.ts";
import { plugin as autoCurriculum } from "./stage/auto-curriculum.ts";
import { plugin as curriculum } from "./stage/curriculum.ts";
import { plugin as none } from "./stage/none.ts";

function byName(...mods: PluginModule[]): Record<string, PluginModule> {
  const out: Record<string, PluginModule> = {};
  for (const m of mods) {
    if (m.name in out) throw new Error(`builtins: two plugins named "${m.name}"`);
    out[m.name] = m;
  }
  return out;
}

/** stage -> name -> plugin module */
export const BUILTIN_PLUGINS: Record<PluginStage, Record<string, PluginModule>> = {
  load: byName(imagefolder, csv, idx, synthetic),
  augment: byName(standard, tsFunction),
  sample: byName(shuffle, inverseFrequency, sqrtInverse, effectiveNumber, progressive),
  loss: byName(crossEntropy, focal, classBalancedFocal, ldamDrw, logitAdjusted, ordinal),
  stage: byName(curriculum, autoCurriculum, antiCurriculum, none),
  evaluate: byName(classification),
};

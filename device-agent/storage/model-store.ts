import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { MANIFEST_FILE, manifestDigest, syncDir } from '../../runtime/artifact/index.js';
import { OutpostError, fromFsError, isOutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { readJson, writeJsonAtomic } from './atomic-files.js';

const log = logger('agent.store');

/** What the device's self-test chose for an installed version: kept beside it, never inside (installs are immutable). */
export const selectionSchema = z.object({
  variant: z.string(),
  backend: z.enum(['native', 'wasm']),
  /** p50 per candidate variant measured here, when the artifact left the choice to the device. */
  benchmark: z.record(z.string(), z.number()).optional(),
  selectedAt: z.string(),
});
export type Selection = z.infer<typeof selectionSchema>;

const absentSchema = z.object({ variants: z.array(z.string()) });

/** Which installed versions take traffic, and how (job document `rollout`); absent = the current version alone. */
export const servingPlanSchema = z.object({
  production: z.array(z.object({ version: z.string(), weight: z.number().positive() })).min(1),
  shadow: z.object({ version: z.string(), percent: z.number().min(0).max(100) }).optional(),
});
export type ServingPlan = z.infer<typeof servingPlanSchema>;

const CURRENT = 'current';
const PLAN = 'serving.json';

/**
 * Installed models (docs/architecture.md, "On the device"):
 *
 *   store/<model>/<version>/          immutable once written: a verified artifact
 *   store/<model>/<version>.selection.json
 *   store/<model>/<version>.absent.json  variants not fetched to this device (files layout), written before install
 *   store/<model>/current             symlink to <version>, swapped by rename (atomic)
 *   store/<model>/.staging-<jobId>/   an install in progress, renamed to <version> when complete
 */
export class ModelStore {
  constructor(readonly root: string) {}

  modelDir(model: string): string {
    return join(this.root, model);
  }

  versionDir(model: string, version: string): string {
    return join(this.root, model, version);
  }

  stagingDir(model: string, jobId: string): string {
    return join(this.root, model, `.staging-${jobId}`);
  }

  async models(): Promise<string[]> {
    try {
      return (await readdir(this.root, { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fromFsError(error, this.root, 'read');
    }
  }

  async versions(model: string): Promise<string[]> {
    try {
      const entries = await readdir(this.modelDir(model), { withFileTypes: true });
      return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fromFsError(error, this.modelDir(model), 'read');
    }
  }

  async has(model: string, version: string): Promise<boolean> {
    return (await this.versions(model)).includes(version);
  }

  /** The active version, or undefined when the model has none (never installed, or the link is dangling). */
  async current(model: string): Promise<string | undefined> {
    try {
      const target = await readlink(join(this.modelDir(model), CURRENT));
      return (await this.has(model, target)) ? target : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'EINVAL')
        return undefined;
      throw fromFsError(error, this.modelDir(model), 'read');
    }
  }

  /**
   * The installed version's manifest digest (runtime/artifact `manifestDigest`), or undefined when the version is
   * not installed. Installed directories were verified and never change, so manifest.json alone says what it is.
   */
  async manifestDigest(model: string, version: string): Promise<string | undefined> {
    if (!(await this.has(model, version))) return undefined;
    const path = join(this.versionDir(model, version), MANIFEST_FILE);
    try {
      return manifestDigest(await readFile(path));
    } catch (error) {
      throw isOutpostError(error) ? error : fromFsError(error, path, 'read');
    }
  }

  /** Moves a complete staging directory into place as `<version>`; a version once installed is never replaced. */
  async install(model: string, version: string, staging: string): Promise<string> {
    const dir = this.versionDir(model, version);
    if (await this.has(model, version)) {
      await rm(staging, { recursive: true, force: true });
      return dir;
    }
    await rename(staging, dir).catch((error: unknown) => {
      throw fromFsError(error, dir, 'write');
    });
    await syncDir(this.modelDir(model));
    return dir;
  }

  /** Points `current` at `version`: a new symlink renamed over the old one, so readers see old or new, never none. */
  async activate(model: string, version: string): Promise<void> {
    if (!(await this.has(model, version))) {
      throw new OutpostError('INTERNAL', `cannot activate ${model}@${version}: not installed`);
    }
    const dir = this.modelDir(model);
    const temp = join(dir, `.current-${randomBytes(4).toString('hex')}`);
    await symlink(version, temp);
    await rename(temp, join(dir, CURRENT));
    await syncDir(dir);
    log.info({ model, version }, 'activated');
  }

  /** The serving plan, or the current version alone when none was written (or none is installed). */
  async servingPlan(model: string): Promise<ServingPlan | undefined> {
    const plan = await readJson(join(this.modelDir(model), PLAN), servingPlanSchema);
    if (plan !== undefined) return plan;
    const current = await this.current(model);
    return current === undefined ? undefined : { production: [{ version: current, weight: 1 }] };
  }

  async saveServingPlan(model: string, plan: ServingPlan): Promise<void> {
    await writeJsonAtomic(join(this.modelDir(model), PLAN), plan);
  }

  /** Versions a plan needs kept (never pruned while it names them). */
  static planVersions(plan: ServingPlan | undefined): string[] {
    if (plan === undefined) return [];
    return [...plan.production.map((p) => p.version), ...(plan.shadow === undefined ? [] : [plan.shadow.version])];
  }

  async selection(model: string, version: string): Promise<Selection | undefined> {
    return readJson(join(this.modelDir(model), `${version}.selection.json`), selectionSchema);
  }

  async saveSelection(model: string, version: string, selection: Selection): Promise<void> {
    await writeJsonAtomic(join(this.modelDir(model), `${version}.selection.json`), selection);
  }

  /** Variants of an installed version whose files were not fetched (VerifyOptions.absentVariants); [] when all were. */
  async absentVariants(model: string, version: string): Promise<string[]> {
    return (await readJson(join(this.modelDir(model), `${version}.absent.json`), absentSchema))?.variants ?? [];
  }

  /** Recorded before `install`: a version is only ever verified against the absences recorded for it. */
  async saveAbsentVariants(model: string, version: string, variants: readonly string[]): Promise<void> {
    const path = join(this.modelDir(model), `${version}.absent.json`);
    if (variants.length === 0) await rm(path, { force: true });
    else await writeJsonAtomic(path, { variants: [...variants] });
  }

  /**
   * This job's own install of `version`, never activated, removed so that it can be installed again with more
   * variants (a self-test fallback): renamed aside first, so a crash leaves the version installed or absent.
   */
  async uninstall(model: string, version: string, jobId: string): Promise<void> {
    const aside = join(this.modelDir(model), `.removing-${jobId}`);
    await rm(aside, { recursive: true, force: true });
    if (!(await this.has(model, version))) return;
    await rename(this.versionDir(model, version), aside).catch((error: unknown) => {
      throw fromFsError(error, this.versionDir(model, version), 'write');
    });
    await syncDir(this.modelDir(model));
    await rm(aside, { recursive: true, force: true });
  }

  /**
   * Keeps the active version, `keep` versions in all (newest installs first), and any version named in `pinned`
   * (the previous one of a deployment in flight); removes the rest and any abandoned staging directories.
   */
  async prune(model: string, keep: number, pinned: readonly string[] = []): Promise<string[]> {
    const dir = this.modelDir(model);
    const current = await this.current(model);
    const entries = await readdir(dir, { withFileTypes: true });
    const versions = [];
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      versions.push({ name: e.name, mtime: (await lstat(join(dir, e.name))).mtimeMs });
    }
    versions.sort((a, b) => b.mtime - a.mtime);
    const kept = new Set([current, ...pinned].filter((v): v is string => v !== undefined));
    for (const v of versions) if (kept.size < keep) kept.add(v.name);
    const removed = versions.filter((v) => !kept.has(v.name)).map((v) => v.name);
    for (const name of removed) {
      await rm(join(dir, `${name}.selection.json`), { force: true });
      await rm(join(dir, `${name}.absent.json`), { force: true });
      await rm(join(dir, name), { recursive: true, force: true });
    }
    if (removed.length > 0) log.info({ model, removed }, 'pruned old versions');
    return removed;
  }

  /** Staging directories left by a crash, so a resumed deployment starts its extraction from scratch. */
  async clearStaging(model: string, jobId: string): Promise<void> {
    await rm(this.stagingDir(model, jobId), { recursive: true, force: true });
  }

  async ensure(model: string): Promise<void> {
    await mkdir(this.modelDir(model), { recursive: true });
  }
}

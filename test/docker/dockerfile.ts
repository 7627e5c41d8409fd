/**
 * Just enough of the Dockerfile grammar (https://docs.docker.com/reference/dockerfile/) to check a Dockerfile's
 * structure where no hadolint or Docker engine is at hand: comments and parser directives dropped, `\` line
 * continuations joined, each instruction split into keyword, flags (`--platform=…`) and the rest, and grouped by
 * build stage (`FROM … AS name`).
 */

export interface Instruction {
  readonly keyword: string;
  /** `--name=value` flags before the arguments, e.g. { platform: '$BUILDPLATFORM' }. */
  readonly flags: Readonly<Record<string, string>>;
  /** The arguments after the flags, as written (JSON exec form left as JSON text). */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly name: string | undefined;
  readonly from: Instruction;
  /** The image after FROM's flags, e.g. `node:${NODE_VERSION}-bookworm-slim`. */
  readonly image: string;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM (usable in FROM lines). */
  readonly globalArgs: readonly Instruction[];
  readonly stages: readonly Stage[];
}

function parseInstruction(text: string, line: number): Instruction {
  const match = /^(\S+)\s*(.*)$/s.exec(text);
  const keyword = (match?.[1] ?? '').toUpperCase();
  let rest = match?.[2] ?? '';
  const flags: Record<string, string> = {};
  for (;;) {
    const flag = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
    if (flag === null) break;
    flags[flag[1] ?? ''] = flag[2] ?? '';
    rest = rest.slice(flag[0].length);
  }
  return { keyword, flags, args: rest.trim(), line };
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    // Comments (and `# syntax=` directives) only where an instruction could start or inside a continuation.
    if (/^\s*#/.test(line)) return;
    if (pending === '' && line.trim() === '') return;
    if (pending === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    instructions.push(parseInstruction(`${pending}${line}`.trim(), startLine));
    pending = '';
  });
  const globalArgs: Instruction[] = [];
  const stages: { name: string | undefined; from: Instruction; image: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = instruction.args.split(/\s+/);
      stages.push({
        name: as?.toUpperCase() === 'AS' ? name : undefined,
        from: instruction,
        image,
        instructions: [],
      });
    } else {
      const current = stages[stages.length - 1];
      if (current === undefined) globalArgs.push(instruction);
      else current.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

/** The instructions of a stage with this keyword. */
export function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** The exec-form (JSON array) arguments of an instruction, or undefined for the shell form. */
export function execForm(instruction: Instruction): string[] | undefined {
  const text = instruction.args.replace(/^CMD\s+/i, '');
  if (!text.startsWith('[')) return undefined;
  return JSON.parse(text) as string[];
}

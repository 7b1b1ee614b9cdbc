/** A quick pre-walk that sums regular-file sizes, so a progress bar can show a total. */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';

export async function scanSize(root: string): Promise<number> {
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    const files: string[] = [];
    for (const e of entries) {
      if (e.isDirectory()) stack.push(join(dir, e.name));
      else if (e.isFile()) files.push(join(dir, e.name));
    }
    const sizes = await Promise.all(files.map((f) => fs.lstat(f).then((s) => s.size, () => 0)));
    for (const s of sizes) total += s;
  }
  return total;
}

/**
 * A small XML well-formedness checker for the tests of the SVG chart (no XML parser is installed, and the chart
 * writer should not be checked by its own code): one root element, balanced tags, quoted and unique attributes,
 * no stray '<' or '&'. It does not validate against SVG's schema.
 */

/** Throws unless `xml` is one well-formed element tree (tags balanced, attributes quoted, entities known). */
export function assertWellFormed(xml: string): void {
  let s = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let roots = 0;
  const text = (t: string): void => {
    if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(t)) throw new Error(`bad entity in ${JSON.stringify(t.slice(0, 40))}`);
    if (t.includes('<') || t.includes('>')) throw new Error(`stray angle bracket in ${JSON.stringify(t.slice(0, 40))}`);
  };
  while (s.length > 0) {
    const lt = s.indexOf('<');
    if (lt < 0) {
      if (s.trim() !== '') throw new Error('text after the root element');
      break;
    }
    const before = s.slice(0, lt);
    if (stack.length === 0 && before.trim() !== '') throw new Error('text outside the root element');
    text(before);
    const gt = s.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = s.slice(lt + 1, gt);
    s = s.slice(gt + 1);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z][\w:-]*)((?:\s+[A-Za-z_:][\w:.-]*="[^"<]*")*)\s*$/.exec(body);
    if (!m) throw new Error(`malformed tag <${tag.slice(0, 60)}>`);
    const names = [...m[2].matchAll(/([A-Za-z_:][\w:.-]*)=/g)].map((a) => a[1]);
    if (new Set(names).size !== names.length) throw new Error(`duplicate attribute in <${m[1]}>`);
    for (const v of m[2].matchAll(/="([^"]*)"/g)) text(v[1]);
    if (stack.length === 0) roots++;
    if (!selfClosing) stack.push(m[1]);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error(`expected one root element, found ${roots}`);
}


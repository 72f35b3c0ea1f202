// Full-text search snippets mark matched words with STX … ETX (see lyrebird-store's
// SNIPPET_MATCH_START / _END). The view renders each part as text, the matches inside <mark>.

export interface SnippetPart {
  text: string;
  match: boolean;
}

export function snippetParts(snippet: string): SnippetPart[] {
  const parts: SnippetPart[] = [];
  let match = false;
  let text = "";
  for (const ch of snippet) {
    if (ch === "\u0002" || ch === "\u0003") {
      if (text) parts.push({ text, match });
      text = "";
      match = ch === "\u0002";
    } else {
      text += ch;
    }
  }
  if (text) parts.push({ text, match });
  return parts;
}

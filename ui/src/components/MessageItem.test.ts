// A message from a remote party is shown as text and runs nothing (issue 5, "proven by tests" 2).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { render } from "svelte/server";
import { describe, expect, it } from "vitest";
import MessageItem from "./MessageItem.svelte";
import type { MessageView } from "../lib/state";

const HOSTILE = `<img src=x onerror="alert(1)"><script>document.title='pwned'</script><b>bold</b>`;

function message(body: string, extra: Partial<MessageView> = {}): MessageView {
  return {
    id: "m1",
    direction: "in",
    state: "delivered",
    body,
    from: "mallory@evil.test",
    nick: null,
    at: 0,
    corrected: false,
    url: null,
    failure: null,
    ...extra,
  };
}

describe("message rendering", () => {
  it("escapes markup and script in the body", () => {
    const { body } = render(MessageItem, { props: { message: message(HOSTILE) } });
    expect(body).not.toContain("<script>");
    expect(body).not.toContain("<img");
    expect(body).not.toContain("<b>bold");
    expect(body).toContain("&lt;script>document.title='pwned'&lt;/script>");
    expect(body).toContain("&lt;img src=x onerror=\"alert(1)\">");
  });

  it("escapes a hostile nick and link too", () => {
    const { body } = render(MessageItem, {
      props: {
        message: message("hi", { nick: "<i>nick</i>", url: "javascript:<svg onload=alert(1)>" }),
        showNick: true,
      },
    });
    expect(body).not.toContain("<i>nick");
    expect(body).not.toContain("<svg");
    expect(body).toContain("&lt;i>nick&lt;/i>");
  });

  it("carries the contract's attributes", () => {
    const { body } = render(MessageItem, {
      props: { message: message("ok", { direction: "out", state: "read", id: "abc" }) },
    });
    expect(body).toContain('data-testid="message-item"');
    expect(body).toContain('data-direction="out"');
    expect(body).toContain('data-state="delivered"');
    expect(body).toContain('data-id="abc"');
    expect(body).toContain('data-testid="message-body"');
  });
});

describe("the source", () => {
  it("never renders raw HTML", () => {
    const root = join(import.meta.dirname, "..");
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith(".svelte") && /\{@html/.test(readFileSync(path, "utf8"))) offenders.push(path);
        else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && /innerHTML|insertAdjacentHTML/.test(readFileSync(path, "utf8"))) offenders.push(path);
      }
    };
    walk(root);
    expect(offenders).toEqual([]);
  });
});

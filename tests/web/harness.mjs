// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core
// (no browser download), WebGPU on SwiftShader, a fresh profile per browser.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=vulkan',
  '--enable-unsafe-swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // gc() in pages and workers: the gc-drop test collects a dropped Generation.
  '--js-flags=--expose-gc',
];

/**
 * Records every GPUDevice the page creates (window.__gpuDevices), so a test can destroy the
 * engine's device and check that the next call fails with DeviceLostError. Only the page's own
 * realm (not a Worker's).
 */
const CAPTURE_DEVICES = () => {
  if (typeof GPUAdapter === 'undefined') return;
  const orig = GPUAdapter.prototype.requestDevice;
  window.__gpuDevices = [];
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const d = await orig.apply(this, args);
    window.__gpuDevices.push(d);
    return d;
  };
};

/** Hides WebGPU from the page (for WebGpuUnavailableError). */
const HIDE_WEBGPU = () => {
  Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
};

export class Browser {
  constructor(context, profileDir, { outDir, name }) {
    this.context = context;
    this.profileDir = profileDir;
    this.outDir = outDir;
    this.name = name;
    this.logs = [];
    this.shots = [];
    this.routeHits = [];
    const attach = (page) => {
      page.on('console', (m) => {
        if (typeof m.worker === 'function' && m.worker()) return; // reported by the worker handler
        this.logs.push(`[page:${m.type()}] ${m.text()}`);
      });
      page.on('pageerror', (e) => this.logs.push(`[pageerror] ${e?.stack ?? e}`));
      page.on('crash', () => this.logs.push('[page crashed]'));
      page.on('requestfailed', (r) => this.logs.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
      page.on('worker', (w) => {
        this.logs.push(`[worker started] ${w.url()}`);
        w.on('console', (m) => this.logs.push(`[worker:${m.type()}] ${m.text()}`));
        w.on('close', () => this.logs.push(`[worker closed] ${w.url()}`));
      });
    };
    context.pages().forEach(attach);
    context.on('page', attach);
  }

  static async launch({ outDir, name = 'browser', viewport = { width: 1000, height: 760 } } = {}) {
    const profileDir = mkdtempSync(join(tmpdir(), 'codellama-web-profile-'));
    const context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport,
    });
    return new Browser(context, profileDir, { outDir, name });
  }

  /**
   * Opens `url` in a new tab and waits for the test page to say it is ready (window.READY), or
   * for `waitFor` (a function evaluated in the page) when given.
   */
  async open(url, { captureDevices = false, hideWebGpu = false, waitForReady = true, timeoutMs = 60_000 } = {}) {
    const page = await this.context.newPage();
    if (captureDevices) await page.addInitScript(CAPTURE_DEVICES);
    if (hideWebGpu) await page.addInitScript(HIDE_WEBGPU);
    await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
    if (waitForReady) {
      await page.waitForFunction(() => window.READY === true || window.READY_ERROR, null, { timeout: timeoutMs });
      const err = await page.evaluate(() => window.READY_ERROR ?? null);
      if (err) throw new Error(`test page failed to start: ${err}`);
    }
    return page;
  }

  /** Aborts every request whose URL matches `pattern` (Playwright route) and counts them. */
  async blockRequests(pattern) {
    await this.context.route(pattern, (route) => {
      this.routeHits.push(route.request().url());
      return route.abort('internetdisconnected');
    });
  }

  async unblockRequests(pattern) {
    await this.context.unroute(pattern);
  }

  async screenshot(page, label) {
    if (!this.outDir) return null;
    mkdirSync(this.outDir, { recursive: true });
    const file = join(this.outDir, `${this.name}-${label}.png`.replace(/[^A-Za-z0-9._-]/g, '_'));
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: 15_000 });
      this.shots.push(file);
      return file;
    } catch (e) {
      this.logs.push(`[screenshot failed] ${label}: ${e?.message ?? e}`);
      return null;
    }
  }

  async close() {
    try {
      await this.context.close();
    } finally {
      rmSync(this.profileDir, { recursive: true, force: true });
    }
  }
}

/**
 * Runs `fn(arg)` in the page with a timeout. Errors thrown in the page come back as an Error
 * whose message names the page error (Playwright keeps only the message); use the page
 * helper `T.capture` to get an error's `name`.
 */
export async function inPage(page, fn, arg, timeoutMs = 600_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`page call timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([page.evaluate(fn, arg), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

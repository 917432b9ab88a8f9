/** A FIFO task queue: tasks run one at a time, in call order. */

import { abortErrorFor } from './errors.js';

export class TaskQueue {
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;

  /** Tasks queued or running. */
  get size(): number {
    return this.#pending;
  }

  /**
   * Runs `task` after every earlier task finished. When `signal` aborts while the task is still
   * waiting, the returned promise rejects at once with `AbortError` and the task never runs
   * (later tasks still wait for the running one).
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.#pending++;
    const prev = this.#tail;
    return new Promise<T>((resolve, reject) => {
      let skipped = false;
      const onAbort = () => {
        skipped = true;
        reject(abortErrorFor(signal));
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      this.#tail = prev.then(async () => {
        signal?.removeEventListener('abort', onAbort);
        try {
          if (!skipped) resolve(await task());
        } catch (e) {
          reject(e);
        } finally {
          this.#pending--;
        }
      });
    });
  }
}

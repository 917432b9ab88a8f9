/** A FIFO task queue: tasks run one at a time, in call order. */

import { abortErrorFor, toCodeLlamaError } from './errors.js';

export class TaskQueue {
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;
  #mutations = 0;

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

  /** Runs a task that changes the engine's state (load, unload…): {@link read} calls wait for it. */
  async mutate<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.#mutations++;
    try {
      return await this.run(task, signal);
    } finally {
      this.#mutations--;
    }
  }

  /**
   * Runs a read-only synchronous call: at once, or after the state-changing tasks queued before
   * it (so it sees their result). Errors become the package's typed errors.
   */
  read<T>(fn: () => T): Promise<T> {
    const call = async () => {
      try {
        return fn();
      } catch (e) {
        throw toCodeLlamaError(e);
      }
    };
    return this.#mutations > 0 ? this.run(call) : call();
  }
}

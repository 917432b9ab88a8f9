// Instruct chat: a system prompt and a multi-turn conversation in Meta's [INST] format (the
// engine applies the template); answers stream in and are rendered as text and code blocks.
import type { ChatMessage } from 'codellama-webgpu';
import { renderMessage, looksLikeCode } from './chat-render';
import { $, describeError, el } from './dom';
import type { Host } from './host';
import { LiveStats } from './live-stats';
import { samplingOptions } from './sampling';

export function setupChat(host: Host): void {
  const list = $('messages');
  const input = $<HTMLTextAreaElement>('chat-input');
  const send = $<HTMLButtonElement>('chat-send');
  const stop = $<HTMLButtonElement>('chat-stop');
  const stats = $('chat-stats');
  const turns: ChatMessage[] = [];

  const bubble = (role: 'user' | 'assistant', text: string) => {
    const li = el('li', `msg ${role}`);
    li.append(el('span', 'who', role === 'user' ? 'You' : 'Code Llama'));
    const body = el('div', 'body');
    renderMessage(body, text);
    li.append(body);
    list.append(li);
    li.scrollIntoView({ block: 'nearest' });
    return body;
  };

  const submit = async () => {
    const text = input.value.trim();
    if (!text || send.disabled) return;
    input.value = '';
    send.disabled = true;
    stop.disabled = false;
    bubble('user', text);
    turns.push({ role: 'user', content: text });
    const body = bubble('assistant', '');
    body.parentElement!.dataset.state = 'running';
    const system = $<HTMLTextAreaElement>('system').value.trim();
    const messages: ChatMessage[] = system ? [{ role: 'system', content: system }, ...turns] : [...turns];
    let answer = '';
    try {
      const live = new LiveStats(stats, null, host.info?.contextLength ?? 0);
      const s = await host.generate(
        (e) => e.chat(messages, samplingOptions()),
        (piece) => {
          answer += piece;
          live.piece();
          renderMessage(body, looksLikeCode(answer) ? '```\n' + answer + '\n```' : answer);
        },
      );
      if (s) live.done(s);
      body.parentElement!.dataset.state = s ? 'done' : 'stopped';
      turns.push({ role: 'assistant', content: answer });
    } catch (e) {
      turns.pop();
      body.parentElement!.dataset.state = 'error';
      renderMessage(body, describeError(e, host.server ? 'server' : 'local'));
    } finally {
      send.disabled = false;
      stop.disabled = true;
    }
  };

  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void submit();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      void submit();
    }
  });
  stop.addEventListener('click', () => host.cancel());
  $('chat-clear').addEventListener('click', () => {
    host.cancel();
    turns.length = 0;
    list.replaceChildren();
    stats.textContent = '';
  });
}

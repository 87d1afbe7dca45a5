import { useEffect, useState } from 'preact/hooks';

/**
 * Results of actions ("Maintenance on for w1"), shown briefly and read out by screen readers (aria-live).
 */
type Message = { id: number; text: string; kind: 'ok' | 'error' };
const listeners = new Set<(m: Message) => void>();
let next = 1;

export function announce(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const m = { id: next++, text, kind };
  for (const l of listeners) l(m);
}

export function Announcer() {
  const [messages, setMessages] = useState<Message[]>([]);
  useEffect(() => {
    const add = (m: Message) => {
      setMessages((list) => [...list.slice(-3), m]);
      setTimeout(() => setMessages((list) => list.filter((x) => x.id !== m.id)), m.kind === 'error' ? 12_000 : 6_000);
    };
    listeners.add(add);
    return () => {
      listeners.delete(add);
    };
  }, []);
  return (
    <div class="announcer" aria-live="polite" aria-atomic="false">
      {messages.map((m) => (
        <p key={m.id} class={`toast toast-${m.kind}`} role={m.kind === 'error' ? 'alert' : undefined}>
          {m.text}
        </p>
      ))}
    </div>
  );
}

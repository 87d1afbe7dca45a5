import type { ComponentChildren } from 'preact';

/**
 * An empty, error or information panel that says what happened and what to do about it. Errors are
 * announced to screen readers (role=alert); the rest are plain status text.
 */
export function Notice(props: {
  kind: 'empty' | 'error' | 'info';
  title: string;
  children?: ComponentChildren;
  action?: ComponentChildren;
}) {
  return (
    <div class={`notice notice-${props.kind}`} role={props.kind === 'error' ? 'alert' : 'status'}>
      <p class="notice-title">{props.title}</p>
      {props.children ? <div class="notice-body">{props.children}</div> : null}
      {props.action ? <div class="notice-action">{props.action}</div> : null}
    </div>
  );
}

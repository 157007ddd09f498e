// The counter buttons: send N increments at once, then compare the counter with what was sent.
const countElement = document.getElementById('count');
const resultElement = document.getElementById('increment-result');

async function increment(times) {
  const before = Number(countElement.textContent);
  // X-Requested-With marks these as AJAX, which (as in CodeIgniter) never rotates the session ID.
  const headers = { 'X-Requested-With': 'XMLHttpRequest' };
  const responses = await Promise.all(
    Array.from({ length: times }, () =>
      fetch('/api/increment', { method: 'POST', headers, credentials: 'same-origin' }),
    ),
  );
  const failed = responses.filter((response) => !response.ok).length;
  const state = await (await fetch('/api/count', { headers, credentials: 'same-origin' })).json();
  countElement.textContent = String(state.count);
  const lost = before + times - state.count;
  resultElement.textContent =
    `Sent ${times} request${times === 1 ? '' : 's'} at once: ${before} → ${state.count}` +
    (failed > 0 ? `, ${failed} failed` : '') +
    (lost === 0 ? ' (none lost).' : ` (${lost} lost!)`);
  resultElement.dataset.done = String(Number(resultElement.dataset.done ?? 0) + 1);
}

for (const button of document.querySelectorAll('button.increment')) {
  button.addEventListener('click', () => {
    increment(Number(button.dataset.times)).catch((error) => {
      resultElement.textContent = `Failed: ${error.message}`;
    });
  });
}

// Count the tempdata notice down; the server removes it when its time is up.
const tempSeconds = document.getElementById('temp-seconds');
if (tempSeconds !== null) {
  const timer = setInterval(() => {
    const left = Number(tempSeconds.textContent) - 1;
    tempSeconds.textContent = String(Math.max(0, left));
    if (left <= 0) clearInterval(timer);
  }, 1000);
}

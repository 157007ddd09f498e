import express from 'express';
import { session } from '../../src/adapters/express.js';

const port = Number(process.env.PORT ?? 3000);
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(session({ driver: 'array' }));

const page = (body: string) =>
  `<!doctype html><meta charset="utf-8"><title>keepsake demo</title><body>${body}</body>`;

app.get('/', (request, response) => {
  const visits = Number(request.session.get('visits') ?? 0) + 1;
  request.session.set('visits', visits);
  const notice = request.session.getFlashdata('notice');
  response.send(
    page(`<h1>keepsake</h1>
<p id="visits">Visits in this session: ${visits}</p>
${typeof notice === 'string' ? `<p id="notice">${notice.replace(/[<&]/g, '')}</p>` : ''}
<form method="post" action="/notice"><button>Flash a notice</button></form>
<form method="post" action="/logout"><button>Destroy the session</button></form>`),
  );
});

app.post('/notice', (request, response) => {
  request.session.setFlashdata('notice', 'This notice is flashdata: it shows once.');
  response.redirect(303, '/');
});

app.post('/logout', async (request, response) => {
  await request.session.destroy();
  response.redirect(303, '/');
});

app.listen(port, () => {
  process.stdout.write(`keepsake demo on http://localhost:${port}\n`);
});

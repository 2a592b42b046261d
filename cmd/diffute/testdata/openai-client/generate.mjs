// Drives Diffute's OpenAI-compatible images API with the official openai
// client, as an application would: new OpenAI({apiKey, baseURL}) and
// client.images.generate. It prints one JSON object with what it got; the Go
// test (cmd/diffute/openai_test.go) checks it.
//
// Environment: DIFFUTE_BASE_URL (http://127.0.0.1:PORT/v1), DIFFUTE_API_KEY,
// DIFFUTE_MODEL (a served model other than the first, to name explicitly).
import OpenAI from 'openai';

const baseURL = process.env.DIFFUTE_BASE_URL;
const apiKey = process.env.DIFFUTE_API_KEY;
const model = process.env.DIFFUTE_MODEL;
if (!baseURL || !apiKey || !model) {
  console.error('DIFFUTE_BASE_URL, DIFFUTE_API_KEY and DIFFUTE_MODEL are required');
  process.exit(2);
}

// No retries: every request must be answered the first time. organization and
// project null: nothing from the environment is sent.
const options = { baseURL, maxRetries: 0, timeout: 120_000, organization: null, project: null };
const client = new OpenAI({ apiKey, ...options });

// failure records how a call failed: the client's error class and what it read.
async function failure(call) {
  try {
    await call();
    return { class: 'none' };
  } catch (err) {
    return {
      class: err.constructor.name,
      isAPIError: err instanceof OpenAI.APIError,
      status: err.status ?? null,
      type: err.type ?? null,
      param: err.param ?? null,
      code: err.code ?? null,
      message: err.message,
    };
  }
}

const out = {};

// The served models, as tools list them before they generate.
const models = [];
for await (const m of client.models.list()) {
  models.push({ id: m.id, object: m.object, owned_by: m.owned_by });
}
out.models = models;

const byURL = await client.images.generate({
  model,
  prompt: 'a lighthouse at dusk',
  n: 2,
  size: '64x64',
  response_format: 'url',
  quality: 'standard',
  style: 'natural',
  user: 'end-user-42',
});
out.url = { created: byURL.created, size: byURL.size, output_format: byURL.output_format, urls: byURL.data.map((d) => d.url) };

// No model: the deployment's first; b64_json: the bytes inline.
const inline = await client.images.generate({
  prompt: 'a red fox in the snow',
  size: '96x64',
  response_format: 'b64_json',
});
out.b64 = { created: inline.created, size: inline.size, images: inline.data.map((d) => d.b64_json) };

out.errors = {
  n0: await failure(() => client.images.generate({ prompt: 'p', n: 0 })),
  size: await failure(() => client.images.generate({ prompt: 'p', size: '13x13' })),
  model: await failure(() => client.images.generate({ model: 'dall-e-3', prompt: 'p' })),
  key: await failure(() => new OpenAI({ apiKey: 'dfk_not-a-key', ...options }).images.generate({ prompt: 'p' })),
};
out.classes = {
  BadRequestError: OpenAI.BadRequestError.name,
  NotFoundError: OpenAI.NotFoundError.name,
  AuthenticationError: OpenAI.AuthenticationError.name,
};

console.log(JSON.stringify(out));

// Run as a child process by provider-check.ts: opens one session on the CUDA provider and exits 0,
// or lets ONNX Runtime print why it cannot (its native log names the missing library) and exits 1.
import { createSession } from './session.js';

const [onnxPath, deviceId] = process.argv.slice(2);
try {
  await createSession(onnxPath!, 1, { name: 'cuda', deviceId: Number(deviceId) });
  process.exit(0);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
}

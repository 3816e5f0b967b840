// io — safetensors files (safetensors.ts) and PEFT LoRA adapters (peft.ts).
export { serializeSafetensors, saveSafetensors, parseSafetensors, loadSafetensors, loadLoraAdapter } from './safetensors';
export { loadPeftAdapter, savePeftAdapter } from './peft';
export type { PeftAdapter, LoadPeftAdapterOptions, LoadPeftAdapterResult, SavePeftAdapterOptions } from './peft';

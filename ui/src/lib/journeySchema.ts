// The journey JSON Schema, fetched once per page load.
import { api, ok } from '../api/client';
import type { Schema } from './schema';

let cached: Promise<Schema> | null = null;

export function journeySchema(): Promise<Schema> {
  if (!cached) {
    cached = ok<Schema>(api.GET('/v1/schema/journey.json')).catch((e) => {
      cached = null;
      throw e;
    });
  }
  return cached;
}

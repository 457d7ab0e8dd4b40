// Every transport the conformance scenarios run over; a new client (the SDK) is one more entry here.
import type { Driver } from "./driver.js";
import { sseDriver } from "./sse-driver.js";
import { wsDriver } from "./ws-driver.js";

export const drivers: readonly Driver[] = [wsDriver, sseDriver];

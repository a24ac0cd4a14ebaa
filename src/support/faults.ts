/**
 * Fault switches support staff flip to rehearse failures where fault injection is enabled:
 * `billingFails` (every billing attempt fails, so orders dead-letter and get compensated) and
 * `refundFails` (the simulated gateway rejects refunds, so a compensation keeps failing and the
 * order ends in `attention`). The billing switch is the app's shared control document; the refund
 * switch is the monitor's own document next to it.
 */
import type { Container } from '@azure/cosmos';
import { z } from 'zod';
import { container } from '../azure/clients';
import { isNotFound } from '../azure/cosmosErrors';
import { TransientError } from '../errors';
import type { OrderSagaDependencies } from '../services/dependencies';

export interface FaultState {
  billingFails: boolean;
  refundFails: boolean;
}

export const faultChangeSchema = z
  .object({ billingFails: z.boolean().optional(), refundFails: z.boolean().optional() })
  .strict()
  .refine((b) => b.billingFails !== undefined || b.refundFails !== undefined, {
    message: 'set billingFails and/or refundFails (booleans)',
  });

export type FaultChange = z.infer<typeof faultChangeSchema>;

export interface CompensationFaultStore {
  refundFails(): Promise<boolean>;
  setRefundFails(on: boolean): Promise<void>;
}

const COMPENSATION_FAULTS_ID = 'compensation-faults';

export class CosmosCompensationFaults implements CompensationFaultStore {
  constructor(private readonly control: Container = container('control')) {}

  async refundFails(): Promise<boolean> {
    try {
      const { resource } = await this.control.item(COMPENSATION_FAULTS_ID, COMPENSATION_FAULTS_ID).read<{ refundFails?: boolean }>();
      return resource?.refundFails === true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async setRefundFails(on: boolean): Promise<void> {
    await this.control.items.upsert({ id: COMPENSATION_FAULTS_ID, refundFails: on });
  }
}

let compensationFaults: CompensationFaultStore | undefined;
export function appCompensationFaults(): CompensationFaultStore {
  compensationFaults ??= new CosmosCompensationFaults();
  return compensationFaults;
}

export async function readFaults(deps: OrderSagaDependencies, compensation: CompensationFaultStore): Promise<FaultState> {
  const [billing, refundFails] = await Promise.all([deps.control.faults(), compensation.refundFails()]);
  return { billingFails: billing.billingFails, refundFails };
}

export async function changeFaults(change: FaultChange, deps: OrderSagaDependencies, compensation: CompensationFaultStore): Promise<FaultState> {
  if (change.billingFails !== undefined) await deps.control.setFaults({ billingFails: change.billingFails });
  if (change.refundFails !== undefined) await compensation.setRefundFails(change.refundFails);
  return readFaults(deps, compensation);
}

/**
 * Thrown by the refund compensation while the refund switch is on: transient, so it is retried.
 * A refund `alreadyMade` (by an earlier run) is not asked of the gateway again, so it cannot fail.
 */
export async function assertRefundsWork(
  deps: OrderSagaDependencies,
  compensation: CompensationFaultStore,
  alreadyMade: () => Promise<boolean> = async () => false,
): Promise<void> {
  if (deps.settings.faultInjectionEnabled && (await compensation.refundFails()) && !(await alreadyMade())) {
    throw new TransientError('payment gateway rejected the refund (refund fault switch on)');
  }
}

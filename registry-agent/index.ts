export { Agent, register, createRegistration } from './agent.ts';
export type { RegisterOptions, RegistrationHandle } from './agent.ts';
export type { Registration, RegistrationState } from '../src/registration/registration.ts';

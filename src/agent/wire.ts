export { WireError, WireReader, WireWriter } from '../ssh/wire';

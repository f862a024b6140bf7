import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLInputType,
  type GraphQLObjectType,
} from 'graphql';
import { schema } from '../../src/graphql/schema.ts';

/** A syntactically valid placeholder value for an argument, so only authentication can fail. */
function sample(type: GraphQLInputType): string {
  if (isNonNullType(type)) return sample(type.ofType);
  if (isListType(type)) return `[${sample(type.ofType)}]`;
  const named = getNamedType(type);
  if (isEnumType(named)) return named.getValues()[0]!.name;
  if (isInputObjectType(named)) {
    const fields = Object.values(named.getFields()).filter((f) => isNonNullType(f.type) && f.defaultValue === undefined);
    return `{${fields.map((f) => `${f.name}: ${sample(f.type)}`).join(', ')}}`;
  }
  if (isScalarType(named) && named.name === 'Int') return '1';
  if (isScalarType(named) && named.name === 'Boolean') return 'true';
  return '"VHJhbnNpdGlvbjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA"';
}

/**
 * Every root field of the schema as a [name, operation] pair (`Query.viewer`,
 * `query { viewer { __typename } }`), with placeholder arguments: tests of who may call what
 * cover fields added later without being told.
 */
export function rootFieldOperations(typeNames: Array<'Query' | 'Mutation' | 'Subscription'>) {
  return typeNames.flatMap((typeName) => {
    const type = schema.getType(typeName) as GraphQLObjectType;
    return Object.values(type.getFields()).map((field) => {
      const args = field.args.filter((a: GraphQLArgument) => isNonNullType(a.type));
      const argText = args.length ? `(${args.map((a) => `${a.name}: ${sample(a.type)}`).join(', ')})` : '';
      const selection = isScalarType(getNamedType(field.type)) || isEnumType(getNamedType(field.type)) ? '' : ' { __typename }';
      const keyword = typeName.toLowerCase();
      return [`${typeName}.${field.name}`, `${keyword} { ${field.name}${argText}${selection} }`] as const;
    });
  });
}

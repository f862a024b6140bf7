import { deleteTransitions } from '../../domain/deletion.ts';
import { builder } from '../builder.ts';
import { encodeId, idOf } from '../ids.ts';

const DeleteTransitionsInput = builder.inputType('DeleteTransitionsInput', {
  fields: (t) => ({
    ids: t.idList({ required: true, description: '1 to 100 transitions of yours, none queued or running.' }),
  }),
});

const DeleteTransitionsPayload = builder.objectRef<{ deletedIds: string[] }>('DeleteTransitionsPayload').implement({
  fields: (t) => ({
    deletedIds: t.idList({ resolve: (r) => r.deletedIds.map((id) => encodeId('Transition', id)) }),
  }),
});

builder.mutationField('deleteTransitions', (t) =>
  t.field({
    type: DeleteTransitionsPayload,
    description:
      'Deletes idle transitions (DRAFT, COMPLETED, FAILED, CANCELED) with their stored videos and posters, all or nothing. ' +
      'A queued or running one is a CONFLICT and nothing is deleted. What fal billed stays in your spend.',
    args: { input: t.arg({ type: DeleteTransitionsInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const accountId = ctx.ownerAccountId();
      const ids = input.ids.map((id, i) => idOf('Transition', String(id), `ids.${i}`));
      return deleteTransitions(ctx.segue, accountId, { ids });
    },
  }),
);

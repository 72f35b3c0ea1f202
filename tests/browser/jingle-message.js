// XEP-0353 (Jingle Message Initiation) for stanza: stanza 12.22 ships only a namespace constant
// for it (NS_JINGLE_MSG_INITIATE_0 = 'urn:xmpp:jingle:jingle-message:0', an old draft name that
// no current client uses) and no stanza definitions, so this module teaches its JXT registry the
// elements Conversations and Dino exchange:
//
//   <message type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='SID'>
//       <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>
//     <store xmlns='urn:xmpp:hints'/></message>
//   ringing | proceed | accept | reject | retract | finish, each with id='SID', the last three
//   optionally carrying a Jingle <reason/>.
//
// Parsed and built as `message.jingleMessage = { type, id, media?: ['audio'], reason?: { condition,
// text? } }`. Shared by the page (bundled) and by Node for a quick round-trip check.

import { JXT } from 'stanza';

export const NS_JINGLE_MESSAGE = 'urn:xmpp:jingle-message:0';
const NS_JINGLE = 'urn:xmpp:jingle:1';
const NS_JINGLE_RTP = 'urn:xmpp:jingle:apps:rtp:1';

export const JINGLE_MESSAGE_TYPES = ['propose', 'ringing', 'proceed', 'accept', 'reject', 'retract', 'finish'];

function childElements(xml) {
  return xml.children.filter((child) => typeof child !== 'string');
}

// The media of every RTP <description/> inside a <propose/>.
function rtpMedia() {
  return {
    importer(xml) {
      const media = childElements(xml)
        .filter((child) => child.getName() === 'description' && child.getNamespace() === NS_JINGLE_RTP)
        .map((child) => child.getAttribute('media'))
        .filter(Boolean);
      return media.length ? media : undefined;
    },
    exporter(xml, value, context) {
      for (const media of value || []) {
        const description = JXT.createElement(NS_JINGLE_RTP, 'description', context.namespace, xml);
        description.setAttribute('media', media);
        xml.appendChild(description);
      }
    },
  };
}

// A Jingle <reason/> (XEP-0166 conditions) inside <reject/>, <retract/> or <finish/>.
function jingleReason() {
  return {
    importer(xml) {
      const reason = childElements(xml).find(
        (child) => child.getName() === 'reason' && child.getNamespace() === NS_JINGLE,
      );
      if (!reason) return undefined;
      const parts = childElements(reason);
      const condition = parts.find((child) => child.getName() !== 'text');
      const text = parts.find((child) => child.getName() === 'text');
      return {
        condition: condition ? condition.getName() : undefined,
        text: text ? text.getText() : undefined,
      };
    },
    exporter(xml, value, context) {
      if (!value || !value.condition) return;
      const reason = JXT.createElement(NS_JINGLE, 'reason', context.namespace, xml);
      reason.appendChild(JXT.createElement(NS_JINGLE, value.condition, NS_JINGLE, reason));
      if (value.text) {
        const text = JXT.createElement(NS_JINGLE, 'text', NS_JINGLE, reason);
        text.appendChild(value.text);
        reason.appendChild(text);
      }
      xml.appendChild(reason);
    },
  };
}

export function defineJingleMessages(registry) {
  registry.define(
    JINGLE_MESSAGE_TYPES.map((type) => ({
      element: type,
      namespace: NS_JINGLE_MESSAGE,
      path: 'message.jingleMessage',
      type,
      typeField: 'type',
      fields: {
        id: JXT.attribute('id'),
        media: rtpMedia(),
        reason: jingleReason(),
      },
    })),
  );
}

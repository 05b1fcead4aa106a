// SMS segments, as carriers count them: GSM-7 (160 characters, 153 per part when split; the
// extension characters count twice) or else UCS-2 (70, 67 per part, by UTF-16 code units).
const GSM =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT = '^{}\\[~]|€\f';

export interface SmsInfo {
  encoding: 'GSM-7' | 'UCS-2';
  units: number;
  segments: number;
}

export function smsInfo(text: string): SmsInfo {
  let gsm = true;
  let units = 0;
  for (const ch of text) {
    if (GSM.includes(ch)) units += 1;
    else if (GSM_EXT.includes(ch)) units += 2;
    else {
      gsm = false;
      break;
    }
  }
  if (!gsm) {
    const u = text.length;
    return { encoding: 'UCS-2', units: u, segments: u === 0 ? 0 : u <= 70 ? 1 : Math.ceil(u / 67) };
  }
  return { encoding: 'GSM-7', units, segments: units === 0 ? 0 : units <= 160 ? 1 : Math.ceil(units / 153) };
}

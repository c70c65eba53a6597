// What only a browser can do: ask the member's own wallet (an injected EIP-1193 provider,
// `window.ethereum`) for signatures: Sign-In with Ethereum (EIP-4361, `personal_sign`) and the
// EIP-712 consents of donations and exchanges (`eth_signTypedData_v4`). The server writes the
// message and the API the typed data: nothing here computes a rule, and no library is needed
// (the wallet signs; the page carries its answers back to the server).

const wallet = () => {
  if (!window.ethereum) throw new Error("No wallet found in this browser: install one, or sign in with your passphrase.");
  return window.ethereum;
};

async function account() {
  const [address] = await wallet().request({ method: "eth_requestAccounts" });
  if (!address) throw new Error("The wallet gave no account.");
  return address;
}

async function signIn(button) {
  const error = document.querySelector("[data-siwe-error]");
  error.hidden = true;
  try {
    const address = await account();
    const asked = await fetch("/wallet/sign-in/siwe-message", { method: "POST", body: new URLSearchParams({ address }) });
    if (!asked.ok) throw new Error((await asked.json()).detail);
    const { message } = await asked.json();
    const signature = await wallet().request({ method: "personal_sign", params: [utf8Hex(message), address] });
    const form = document.querySelector("[data-siwe-form]");
    form.elements.message.value = message;
    form.elements.signature.value = signature;
    form.submit();
  } catch (e) {
    error.textContent = e.message || String(e);
    error.hidden = false;
  }
}

function utf8Hex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

// A form marked `data-consent="<url>"` (a self-custody member's donation or exchange): the
// server asks the API for the consent's typed data, the wallet signs it, and the form is sent
// with the signature and its deadline.
async function signAndSend(form, event) {
  event.preventDefault();
  const body = new FormData(form);
  const quote = await fetch(form.dataset.consent, { method: "POST", body });
  if (!quote.ok) { form.outerHTML = await quote.text(); return; }
  const consent = await quote.json();
  const address = await account();
  const signature = await wallet().request({
    method: "eth_signTypedData_v4", params: [address, JSON.stringify(consent.typed_data)],
  });
  for (const [name, value] of [["signature", signature], ["deadline", consent.deadline]]) {
    const input = Object.assign(document.createElement("input"), { type: "hidden", name, value });
    form.append(input);
  }
  form.elements.idempotency_key.value = crypto.randomUUID().replaceAll("-", "");
  form.submit();
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-siwe]");
  if (button) signIn(button);
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-consent]");
  if (form) signAndSend(form, event).catch((e) => alert(e.message || String(e)));
});

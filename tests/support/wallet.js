// A real wallet library (ethers.js, from npm) signing what the API hands out, for the tests:
// reads one JSON request on stdin, writes one JSON answer on stdout.
//   {"do": "create"}                                  -> {address, privateKey}
//   {"do": "signMessage", privateKey, message}        -> {signature}            (EIP-191, for SIWE)
//   {"do": "signTypedData", privateKey, typedData}    -> {signature, compact}   (EIP-712; compact: EIP-2098)
const { ethers } = require("ethers");

async function answer(request) {
  if (request.do === "create") {
    const wallet = ethers.Wallet.createRandom();
    return { address: wallet.address, privateKey: wallet.privateKey };
  }
  const wallet = new ethers.Wallet(request.privateKey);
  if (request.do === "signMessage") {
    return { signature: await wallet.signMessage(request.message) };
  }
  if (request.do === "signTypedData") {
    const { domain, types, message } = request.typedData;
    const signature = await wallet.signTypedData(domain, types, message);
    return { signature, compact: ethers.Signature.from(signature).compactSerialized };
  }
  throw new Error(`unknown request ${request.do}`);
}

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  try {
    process.stdout.write(JSON.stringify(await answer(JSON.parse(input))));
  } catch (error) {
    process.stderr.write(String(error.stack || error));
    process.exitCode = 1;
  }
});

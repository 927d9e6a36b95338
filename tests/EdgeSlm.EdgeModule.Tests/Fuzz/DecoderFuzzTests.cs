using EdgeSlm.Fuzz;

namespace EdgeSlm.EdgeModule.Tests.Fuzz;

/// <summary>
/// The gguf-decoder fuzz target on its seeds and on deterministic mutations of them (bytes of the header, metadata
/// and tensor table changed; byte-level BPE and SentencePiece vocabularies): every input is either read or refused with
/// a typed, one-line error.
/// </summary>
public sealed class DecoderFuzzTests
{
    [Fact]
    public void The_decoder_seeds_load_and_their_mutations_are_read_or_refused_in_one_line()
    {
        string corpus = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-fuzz-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            string[] seeds = BinarySeeds.WriteAll(corpus).Where(p => p.Contains("gguf-decoder", StringComparison.Ordinal)).ToArray();
            Assert.Equal(3, seeds.Length);
            var random = new Random(15);
            int refused = 0, read = 0;
            foreach (string seed in seeds)
            {
                byte[] original = File.ReadAllBytes(seed);
                FuzzOutcome outcome = FuzzTargets.Run("gguf-decoder", original);
                Assert.True(outcome.Accepted, outcome.Detail);
                bool sentencePiece = seed.EndsWith("-spm.gguf", StringComparison.Ordinal);
                Assert.Contains(sentencePiece ? "263 tokens" : "259 tokens", outcome.Detail);
                // The metadata and tensor table; the SentencePiece seed's metadata alone (256 byte tokens, scores, types) is longer.
                int header = Math.Min(original.Length, sentencePiece ? 8000 : 6000);
                for (int i = 0; i < 600; i++)
                {
                    byte[] mutated = (byte[])original.Clone();
                    int changes = 1 + random.Next(4);
                    for (int c = 0; c < changes; c++)
                    {
                        int at = random.Next(header);
                        mutated[at] = random.Next(3) switch { 0 => (byte)(mutated[at] ^ (1 << random.Next(8))), 1 => 0xFF, _ => (byte)random.Next(256) };
                    }
                    FuzzOutcome result = FuzzTargets.Run("gguf-decoder", mutated);
                    Assert.DoesNotContain('\n', result.Detail);
                    if (result.Accepted) read++; else refused++;
                }
            }
            Assert.True(refused > 100 && read > 10, $"{read} read, {refused} refused");
        }
        finally
        {
            Directory.Delete(corpus, recursive: true);
        }
    }
}

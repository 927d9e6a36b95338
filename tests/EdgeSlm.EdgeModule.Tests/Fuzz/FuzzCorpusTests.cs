using EdgeSlm.Fuzz;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Fuzz;

/// <summary>
/// Every input of the fuzzing corpus (tests/EdgeSlm.Fuzz/corpus/&lt;target&gt;/: the seeds and every input that once
/// crashed a parser) through the fuzz target's own code, in process: each must be read or refused with the parser's
/// typed error. This checks the corpus on every test run, without afl-fuzz.
/// </summary>
public sealed class FuzzCorpusTests
{
    private const long MaxCorpusFileBytes = 64 * 1024;

    private static string CorpusDirectory => GeneratedCorpus.Value;

    // The text seeds of the repository and the binary seeds (GGUF, ONNX) the harness generates: no GGUF or ONNX file
    // is kept in git. Made once per test run, in a temporary folder.
    private static readonly Lazy<string> GeneratedCorpus = new(() =>
    {
        string corpus = Path.Combine(Path.GetTempPath(), "edgeslm-fuzz-corpus-" + Guid.NewGuid().ToString("N")[..8]);
        string repository = Path.Combine(TestEnvironment.RepositoryRoot, "tests", "EdgeSlm.Fuzz", "corpus");
        foreach (string file in Directory.EnumerateFiles(repository, "*", SearchOption.AllDirectories))
        {
            string copy = Path.Combine(corpus, Path.GetRelativePath(repository, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }
        _ = BinarySeeds.WriteAll(corpus).ToList();
        return corpus;
    });

    public static TheoryData<string, string> CorpusFiles()
    {
        var data = new TheoryData<string, string>();
        foreach (string target in FuzzTargets.Names)
        {
            string folder = Path.Combine(CorpusDirectory, target);
            if (!Directory.Exists(folder))
            {
                continue;
            }
            foreach (string file in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
            {
                data.Add(target, Path.GetFileName(file));
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void Corpus_input_is_read_or_refused_with_a_typed_error(string target, string file)
    {
        byte[] input = File.ReadAllBytes(Path.Combine(CorpusDirectory, target, file));

        FuzzOutcome outcome = FuzzTargets.Run(target, input);

        Assert.False(string.IsNullOrWhiteSpace(outcome.Detail));
    }

    [Fact]
    public void Every_target_has_a_small_seed_corpus_and_every_corpus_folder_a_target()
    {
        foreach (string target in FuzzTargets.Names)
        {
            string[] files = Directory.Exists(Path.Combine(CorpusDirectory, target)) ? Directory.GetFiles(Path.Combine(CorpusDirectory, target)) : [];
            Assert.True(files.Length > 0, $"fuzz target '{target}' has no seed corpus");
            Assert.All(files, f => Assert.True(new FileInfo(f).Length <= MaxCorpusFileBytes, $"{f} is over {MaxCorpusFileBytes} bytes"));
        }
        Assert.All(Directory.GetDirectories(CorpusDirectory), d => Assert.Contains(Path.GetFileName(d), FuzzTargets.Names));
    }
}

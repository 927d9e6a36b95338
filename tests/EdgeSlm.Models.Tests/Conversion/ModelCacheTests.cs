using System.Text.Json;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Conversion;

public sealed class ModelCacheTests(ConvertedModels models)
{
    [Fact]
    public void Model_list_resolves_each_comma_separated_file_and_rejects_empty_names()
    {
        string minilm = models.Path(BundledModel.MiniLM, QuantType.Q4_0);
        string arctic = models.Path(BundledModel.ArcticXs, QuantType.Q4_0);
        Assert.Equal([minilm, arctic], ModelCache.ResolveAll($"{minilm}, {arctic}", null));
        Assert.Throws<ArgumentException>(() => ModelCache.ResolveAll($"{minilm},,{arctic}", null));
        Assert.Throws<FileNotFoundException>(() => ModelCache.ResolveAll(minilm + ".missing", null));
        Assert.Throws<ArgumentException>(() => ModelCache.Resolve("bundled:no-such-model", null));
    }
}
